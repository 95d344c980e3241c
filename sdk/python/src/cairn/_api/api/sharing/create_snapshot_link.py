from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.snapshot_link_info import SnapshotLinkInfo
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    expires: str | Unset = UNSET,
    format_: str | Unset = UNSET,
    store: bool | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["expires"] = expires

    params["format"] = format_

    params["store"] = store

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/snapshots/{id}/link".format(
            id=quote(str(id), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | SnapshotLinkInfo | None:
    if response.status_code == 201:
        response_201 = SnapshotLinkInfo.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 500:
        response_500 = ErrorBody.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | SnapshotLinkInfo]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    expires: str | Unset = UNSET,
    format_: str | Unset = UNSET,
    store: bool | Unset = UNSET,
) -> Response[ErrorBody | SnapshotLinkInfo]:
    """A signed link that downloads the snapshot's archive with no token (`curl -fO URL`), served on
    cairnd's TCP listener until it expires (default and most: 1 hour, see `cairnd --max-link-expiry`).
    With `store=true` and a remote store, the link is instead the store's pre-signed URL of the archive
    (uploaded there once per snapshot and format), so the download does not pass through cairnd;
    deleting the snapshot deletes it.

    Args:
        id (str):
        expires (str | Unset):
        format_ (str | Unset):
        store (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SnapshotLinkInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        expires=expires,
        format_=format_,
        store=store,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient,
    expires: str | Unset = UNSET,
    format_: str | Unset = UNSET,
    store: bool | Unset = UNSET,
) -> ErrorBody | SnapshotLinkInfo | None:
    """A signed link that downloads the snapshot's archive with no token (`curl -fO URL`), served on
    cairnd's TCP listener until it expires (default and most: 1 hour, see `cairnd --max-link-expiry`).
    With `store=true` and a remote store, the link is instead the store's pre-signed URL of the archive
    (uploaded there once per snapshot and format), so the download does not pass through cairnd;
    deleting the snapshot deletes it.

    Args:
        id (str):
        expires (str | Unset):
        format_ (str | Unset):
        store (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SnapshotLinkInfo
    """

    return sync_detailed(
        id=id,
        client=client,
        expires=expires,
        format_=format_,
        store=store,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    expires: str | Unset = UNSET,
    format_: str | Unset = UNSET,
    store: bool | Unset = UNSET,
) -> Response[ErrorBody | SnapshotLinkInfo]:
    """A signed link that downloads the snapshot's archive with no token (`curl -fO URL`), served on
    cairnd's TCP listener until it expires (default and most: 1 hour, see `cairnd --max-link-expiry`).
    With `store=true` and a remote store, the link is instead the store's pre-signed URL of the archive
    (uploaded there once per snapshot and format), so the download does not pass through cairnd;
    deleting the snapshot deletes it.

    Args:
        id (str):
        expires (str | Unset):
        format_ (str | Unset):
        store (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SnapshotLinkInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        expires=expires,
        format_=format_,
        store=store,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
    expires: str | Unset = UNSET,
    format_: str | Unset = UNSET,
    store: bool | Unset = UNSET,
) -> ErrorBody | SnapshotLinkInfo | None:
    """A signed link that downloads the snapshot's archive with no token (`curl -fO URL`), served on
    cairnd's TCP listener until it expires (default and most: 1 hour, see `cairnd --max-link-expiry`).
    With `store=true` and a remote store, the link is instead the store's pre-signed URL of the archive
    (uploaded there once per snapshot and format), so the download does not pass through cairnd;
    deleting the snapshot deletes it.

    Args:
        id (str):
        expires (str | Unset):
        format_ (str | Unset):
        store (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SnapshotLinkInfo
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            expires=expires,
            format_=format_,
            store=store,
        )
    ).parsed
