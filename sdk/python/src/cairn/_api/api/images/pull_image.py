from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.image_info import ImageInfo
from ...models.pull_image_request import PullImageRequest
from ...types import Response


def _get_kwargs(
    *,
    body: PullImageRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/images/pull",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | ImageInfo | None:
    if response.status_code == 201:
        response_201 = ImageInfo.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = ErrorBody.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorBody.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorBody.from_dict(response.json())

        return response_403

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
) -> Response[ErrorBody | ImageInfo]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: PullImageRequest,
) -> Response[ErrorBody | ImageInfo]:
    """Pull an image from an OCI distribution registry (`host[:port]/repository[:tag|@digest]`; Docker
    Hub's short forms too) as an image of the caller's account. Only the layers this host's blob cache
    lacks are downloaded; every blob is checked against its digest, and the layers are unpacked with the
    same safety as an archive import. A failed pull leaves no image behind. The answer's `pull` says
    what was downloaded.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `layer sha256:<12 hex>` (bytes
    downloaded of the layer's size) for each layer downloaded, then one `result` (status 201
    and the image) or `error` (the status and error listed here).

    Args:
        body (PullImageRequest): `POST /v1/images/pull`: pull an image from an OCI distribution
            registry.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ImageInfo]
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
    body: PullImageRequest,
) -> ErrorBody | ImageInfo | None:
    """Pull an image from an OCI distribution registry (`host[:port]/repository[:tag|@digest]`; Docker
    Hub's short forms too) as an image of the caller's account. Only the layers this host's blob cache
    lacks are downloaded; every blob is checked against its digest, and the layers are unpacked with the
    same safety as an archive import. A failed pull leaves no image behind. The answer's `pull` says
    what was downloaded.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `layer sha256:<12 hex>` (bytes
    downloaded of the layer's size) for each layer downloaded, then one `result` (status 201
    and the image) or `error` (the status and error listed here).

    Args:
        body (PullImageRequest): `POST /v1/images/pull`: pull an image from an OCI distribution
            registry.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ImageInfo
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: PullImageRequest,
) -> Response[ErrorBody | ImageInfo]:
    """Pull an image from an OCI distribution registry (`host[:port]/repository[:tag|@digest]`; Docker
    Hub's short forms too) as an image of the caller's account. Only the layers this host's blob cache
    lacks are downloaded; every blob is checked against its digest, and the layers are unpacked with the
    same safety as an archive import. A failed pull leaves no image behind. The answer's `pull` says
    what was downloaded.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `layer sha256:<12 hex>` (bytes
    downloaded of the layer's size) for each layer downloaded, then one `result` (status 201
    and the image) or `error` (the status and error listed here).

    Args:
        body (PullImageRequest): `POST /v1/images/pull`: pull an image from an OCI distribution
            registry.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ImageInfo]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: PullImageRequest,
) -> ErrorBody | ImageInfo | None:
    """Pull an image from an OCI distribution registry (`host[:port]/repository[:tag|@digest]`; Docker
    Hub's short forms too) as an image of the caller's account. Only the layers this host's blob cache
    lacks are downloaded; every blob is checked against its digest, and the layers are unpacked with the
    same safety as an archive import. A failed pull leaves no image behind. The answer's `pull` says
    what was downloaded.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `layer sha256:<12 hex>` (bytes
    downloaded of the layer's size) for each layer downloaded, then one `result` (status 201
    and the image) or `error` (the status and error listed here).

    Args:
        body (PullImageRequest): `POST /v1/images/pull`: pull an image from an OCI distribution
            registry.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ImageInfo
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
