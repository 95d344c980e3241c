from http import HTTPStatus
from typing import Any, cast

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.registry_login_request import RegistryLoginRequest
from ...types import Response


def _get_kwargs(
    *,
    body: RegistryLoginRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/registries/login",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Any | ErrorBody | None:
    if response.status_code == 204:
        response_204 = cast(Any, None)
        return response_204

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 408:
        response_408 = ErrorBody.from_dict(response.json())

        return response_408

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

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Any | ErrorBody]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: RegistryLoginRequest,
) -> Response[Any | ErrorBody]:
    """Keep credentials for a registry (`host[:port]`) for the caller's account: its pulls from that
    registry use them (HTTP basic, or to get a bearer token). They are sealed at rest and never
    returned; logging in again replaces them.

    Args:
        body (RegistryLoginRequest): `POST /v1/registries/login`: credentials for a registry, kept
            (sealed) for the caller's
            account and used by its pulls from that registry. Never returned by any request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: RegistryLoginRequest,
) -> Any | ErrorBody | None:
    """Keep credentials for a registry (`host[:port]`) for the caller's account: its pulls from that
    registry use them (HTTP basic, or to get a bearer token). They are sealed at rest and never
    returned; logging in again replaces them.

    Args:
        body (RegistryLoginRequest): `POST /v1/registries/login`: credentials for a registry, kept
            (sealed) for the caller's
            account and used by its pulls from that registry. Never returned by any request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: RegistryLoginRequest,
) -> Response[Any | ErrorBody]:
    """Keep credentials for a registry (`host[:port]`) for the caller's account: its pulls from that
    registry use them (HTTP basic, or to get a bearer token). They are sealed at rest and never
    returned; logging in again replaces them.

    Args:
        body (RegistryLoginRequest): `POST /v1/registries/login`: credentials for a registry, kept
            (sealed) for the caller's
            account and used by its pulls from that registry. Never returned by any request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorBody]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: RegistryLoginRequest,
) -> Any | ErrorBody | None:
    """Keep credentials for a registry (`host[:port]`) for the caller's account: its pulls from that
    registry use them (HTTP basic, or to get a bearer token). They are sealed at rest and never
    returned; logging in again replaces them.

    Args:
        body (RegistryLoginRequest): `POST /v1/registries/login`: credentials for a registry, kept
            (sealed) for the caller's
            account and used by its pulls from that registry. Never returned by any request.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorBody
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
