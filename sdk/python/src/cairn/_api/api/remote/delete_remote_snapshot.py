from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.remote_delete_info import RemoteDeleteInfo
from ...types import Response


def _get_kwargs(
    id: str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "delete",
        "url": "/v1/remote/snapshots/{id}".format(
            id=quote(str(id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | RemoteDeleteInfo | None:
    if response.status_code == 200:
        response_200 = RemoteDeleteInfo.from_dict(response.json())

        return response_200

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
) -> Response[ErrorBody | RemoteDeleteInfo]:
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
) -> Response[ErrorBody | RemoteDeleteInfo]:
    """Delete a pushed snapshot (by id, or by name when one pushed snapshot has it) from the remote store,
    then the chunks no other pushed snapshot of the account names (those older than cairnd's --remote-
    gc-grace). Hosts that pulled it keep their copy; this host's snapshot of that id, if any, stays.

    Args:
        id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | RemoteDeleteInfo]
    """

    kwargs = _get_kwargs(
        id=id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient,
) -> ErrorBody | RemoteDeleteInfo | None:
    """Delete a pushed snapshot (by id, or by name when one pushed snapshot has it) from the remote store,
    then the chunks no other pushed snapshot of the account names (those older than cairnd's --remote-
    gc-grace). Hosts that pulled it keep their copy; this host's snapshot of that id, if any, stays.

    Args:
        id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | RemoteDeleteInfo
    """

    return sync_detailed(
        id=id,
        client=client,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
) -> Response[ErrorBody | RemoteDeleteInfo]:
    """Delete a pushed snapshot (by id, or by name when one pushed snapshot has it) from the remote store,
    then the chunks no other pushed snapshot of the account names (those older than cairnd's --remote-
    gc-grace). Hosts that pulled it keep their copy; this host's snapshot of that id, if any, stays.

    Args:
        id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | RemoteDeleteInfo]
    """

    kwargs = _get_kwargs(
        id=id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
) -> ErrorBody | RemoteDeleteInfo | None:
    """Delete a pushed snapshot (by id, or by name when one pushed snapshot has it) from the remote store,
    then the chunks no other pushed snapshot of the account names (those older than cairnd's --remote-
    gc-grace). Hosts that pulled it keep their copy; this host's snapshot of that id, if any, stays.

    Args:
        id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | RemoteDeleteInfo
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
        )
    ).parsed
