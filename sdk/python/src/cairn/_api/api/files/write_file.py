from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.file_entry import FileEntry
from ...types import UNSET, File, Response, Unset


def _get_kwargs(
    id: str,
    *,
    body: File,
    path: str,
    mode: str | Unset = UNSET,
    uid: int | Unset = UNSET,
    gid: int | Unset = UNSET,
    archive: str | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    params: dict[str, Any] = {}

    params["path"] = path

    params["mode"] = mode

    params["uid"] = uid

    params["gid"] = gid

    params["archive"] = archive

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/v1/sandboxes/{id}/files".format(
            id=quote(str(id), safe=""),
        ),
        "params": params,
    }

    _kwargs["content"] = body.payload
    headers["Content-Type"] = "application/octet-stream"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | FileEntry | None:
    if response.status_code == 200:
        response_200 = FileEntry.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = ErrorBody.from_dict(response.json())

        return response_404

    if response.status_code == 408:
        response_408 = ErrorBody.from_dict(response.json())

        return response_408

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 500:
        response_500 = ErrorBody.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorBody.from_dict(response.json())

        return response_503

    if response.status_code == 507:
        response_507 = ErrorBody.from_dict(response.json())

        return response_507

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorBody | FileEntry]:
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
    body: File,
    path: str,
    mode: str | Unset = UNSET,
    uid: int | Unset = UNSET,
    gid: int | Unset = UNSET,
    archive: str | Unset = UNSET,
) -> Response[ErrorBody | FileEntry]:
    """Write a sandbox's file from the body (streamed; a failed write leaves no partial file), or with
    `archive=tar` extract a tar stream into a directory. The sandbox must be stopped, or running under
    runc.

    Args:
        id (str):
        path (str):
        mode (str | Unset):
        uid (int | Unset):
        gid (int | Unset):
        archive (str | Unset):
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | FileEntry]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
        path=path,
        mode=mode,
        uid=uid,
        gid=gid,
        archive=archive,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient,
    body: File,
    path: str,
    mode: str | Unset = UNSET,
    uid: int | Unset = UNSET,
    gid: int | Unset = UNSET,
    archive: str | Unset = UNSET,
) -> ErrorBody | FileEntry | None:
    """Write a sandbox's file from the body (streamed; a failed write leaves no partial file), or with
    `archive=tar` extract a tar stream into a directory. The sandbox must be stopped, or running under
    runc.

    Args:
        id (str):
        path (str):
        mode (str | Unset):
        uid (int | Unset):
        gid (int | Unset):
        archive (str | Unset):
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | FileEntry
    """

    return sync_detailed(
        id=id,
        client=client,
        body=body,
        path=path,
        mode=mode,
        uid=uid,
        gid=gid,
        archive=archive,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    body: File,
    path: str,
    mode: str | Unset = UNSET,
    uid: int | Unset = UNSET,
    gid: int | Unset = UNSET,
    archive: str | Unset = UNSET,
) -> Response[ErrorBody | FileEntry]:
    """Write a sandbox's file from the body (streamed; a failed write leaves no partial file), or with
    `archive=tar` extract a tar stream into a directory. The sandbox must be stopped, or running under
    runc.

    Args:
        id (str):
        path (str):
        mode (str | Unset):
        uid (int | Unset):
        gid (int | Unset):
        archive (str | Unset):
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | FileEntry]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
        path=path,
        mode=mode,
        uid=uid,
        gid=gid,
        archive=archive,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
    body: File,
    path: str,
    mode: str | Unset = UNSET,
    uid: int | Unset = UNSET,
    gid: int | Unset = UNSET,
    archive: str | Unset = UNSET,
) -> ErrorBody | FileEntry | None:
    """Write a sandbox's file from the body (streamed; a failed write leaves no partial file), or with
    `archive=tar` extract a tar stream into a directory. The sandbox must be stopped, or running under
    runc.

    Args:
        id (str):
        path (str):
        mode (str | Unset):
        uid (int | Unset):
        gid (int | Unset):
        archive (str | Unset):
        body (File):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | FileEntry
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            body=body,
            path=path,
            mode=mode,
            uid=uid,
            gid=gid,
            archive=archive,
        )
    ).parsed
