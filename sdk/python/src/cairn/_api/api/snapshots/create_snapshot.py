from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.create_snapshot_request import CreateSnapshotRequest
from ...models.error_body import ErrorBody
from ...models.snapshot_info import SnapshotInfo
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    body: CreateSnapshotRequest | None | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/sandboxes/{id}/snapshots".format(
            id=quote(str(id), safe=""),
        ),
    }

    if isinstance(body, CreateSnapshotRequest):
        _kwargs["json"] = body.to_dict()
    else:
        _kwargs["json"] = body

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | SnapshotInfo | None:
    if response.status_code == 201:
        response_201 = SnapshotInfo.from_dict(response.json())

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

    if response.status_code == 408:
        response_408 = ErrorBody.from_dict(response.json())

        return response_408

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

    if response.status_code == 413:
        response_413 = ErrorBody.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = ErrorBody.from_dict(response.json())

        return response_415

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
) -> Response[ErrorBody | SnapshotInfo]:
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
    body: CreateSnapshotRequest | None | Unset = UNSET,
) -> Response[ErrorBody | SnapshotInfo]:
    """Snapshot a sandbox (running, paused or stopped): a brief pause, then a read-only copy-on-write
    capture.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: for a stateful snapshot `progress` lines of phase `memory`
    (bytes received of an estimate of the sandbox's memory; the last one the whole), then one
    `result` (status 201 and the snapshot) or `error` (the status and error listed here).

    Args:
        id (str):
        body (CreateSnapshotRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SnapshotInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient,
    body: CreateSnapshotRequest | None | Unset = UNSET,
) -> ErrorBody | SnapshotInfo | None:
    """Snapshot a sandbox (running, paused or stopped): a brief pause, then a read-only copy-on-write
    capture.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: for a stateful snapshot `progress` lines of phase `memory`
    (bytes received of an estimate of the sandbox's memory; the last one the whole), then one
    `result` (status 201 and the snapshot) or `error` (the status and error listed here).

    Args:
        id (str):
        body (CreateSnapshotRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SnapshotInfo
    """

    return sync_detailed(
        id=id,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    body: CreateSnapshotRequest | None | Unset = UNSET,
) -> Response[ErrorBody | SnapshotInfo]:
    """Snapshot a sandbox (running, paused or stopped): a brief pause, then a read-only copy-on-write
    capture.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: for a stateful snapshot `progress` lines of phase `memory`
    (bytes received of an estimate of the sandbox's memory; the last one the whole), then one
    `result` (status 201 and the snapshot) or `error` (the status and error listed here).

    Args:
        id (str):
        body (CreateSnapshotRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SnapshotInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
    body: CreateSnapshotRequest | None | Unset = UNSET,
) -> ErrorBody | SnapshotInfo | None:
    """Snapshot a sandbox (running, paused or stopped): a brief pause, then a read-only copy-on-write
    capture.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: for a stateful snapshot `progress` lines of phase `memory`
    (bytes received of an estimate of the sandbox's memory; the last one the whole), then one
    `result` (status 201 and the snapshot) or `error` (the status and error listed here).

    Args:
        id (str):
        body (CreateSnapshotRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SnapshotInfo
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            body=body,
        )
    ).parsed
