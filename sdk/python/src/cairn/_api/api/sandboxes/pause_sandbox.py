from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.sandbox_info import SandboxInfo
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    release_memory: bool | Unset = UNSET,
) -> dict[str, Any]:

    params: dict[str, Any] = {}

    params["release_memory"] = release_memory

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/sandboxes/{id}/pause".format(
            id=quote(str(id), safe=""),
        ),
        "params": params,
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | SandboxInfo | None:
    if response.status_code == 200:
        response_200 = SandboxInfo.from_dict(response.json())

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

    if response.status_code == 409:
        response_409 = ErrorBody.from_dict(response.json())

        return response_409

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
) -> Response[ErrorBody | SandboxInfo]:
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
    release_memory: bool | Unset = UNSET,
) -> Response[ErrorBody | SandboxInfo]:
    """Freeze a running sandbox and take an automatic snapshot (`auto-pause-…`, with process memory where
    the runtime can); `release_memory` also ends the processes after checkpointing them, so the sandbox
    holds no memory until resumed.

    Args:
        id (str):
        release_memory (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SandboxInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        release_memory=release_memory,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    id: str,
    *,
    client: AuthenticatedClient,
    release_memory: bool | Unset = UNSET,
) -> ErrorBody | SandboxInfo | None:
    """Freeze a running sandbox and take an automatic snapshot (`auto-pause-…`, with process memory where
    the runtime can); `release_memory` also ends the processes after checkpointing them, so the sandbox
    holds no memory until resumed.

    Args:
        id (str):
        release_memory (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SandboxInfo
    """

    return sync_detailed(
        id=id,
        client=client,
        release_memory=release_memory,
    ).parsed


async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient,
    release_memory: bool | Unset = UNSET,
) -> Response[ErrorBody | SandboxInfo]:
    """Freeze a running sandbox and take an automatic snapshot (`auto-pause-…`, with process memory where
    the runtime can); `release_memory` also ends the processes after checkpointing them, so the sandbox
    holds no memory until resumed.

    Args:
        id (str):
        release_memory (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | SandboxInfo]
    """

    kwargs = _get_kwargs(
        id=id,
        release_memory=release_memory,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient,
    release_memory: bool | Unset = UNSET,
) -> ErrorBody | SandboxInfo | None:
    """Freeze a running sandbox and take an automatic snapshot (`auto-pause-…`, with process memory where
    the runtime can); `release_memory` also ends the processes after checkpointing them, so the sandbox
    holds no memory until resumed.

    Args:
        id (str):
        release_memory (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | SandboxInfo
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            release_memory=release_memory,
        )
    ).parsed
