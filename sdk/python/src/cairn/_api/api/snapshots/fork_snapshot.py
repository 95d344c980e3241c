from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_body import ErrorBody
from ...models.fork_batch import ForkBatch
from ...models.fork_request import ForkRequest
from ...types import UNSET, Response, Unset


def _get_kwargs(
    id: str,
    *,
    body: ForkRequest | None | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/snapshots/{id}/fork".format(
            id=quote(str(id), safe=""),
        ),
    }

    if isinstance(body, ForkRequest):
        _kwargs["json"] = body.to_dict()
    else:
        _kwargs["json"] = body

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorBody | ForkBatch | None:
    if response.status_code == 201:
        response_201 = ForkBatch.from_dict(response.json())

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
) -> Response[ErrorBody | ForkBatch]:
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
    body: ForkRequest | None | Unset = UNSET,
) -> Response[ErrorBody | ForkBatch]:
    """Fork a snapshot `count` times (1 to 256): the sandboxes are made concurrently. Answers 201 with the
    forks made and, when some were not, why (each failed fork left nothing behind); when none could be
    made, the error that refused the first.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `forks` (forks done of the count),
    then one `result` (status 201 and the batch) or `error` (the status and error listed here).

    Args:
        id (str):
        body (ForkRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ForkBatch]
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
    body: ForkRequest | None | Unset = UNSET,
) -> ErrorBody | ForkBatch | None:
    """Fork a snapshot `count` times (1 to 256): the sandboxes are made concurrently. Answers 201 with the
    forks made and, when some were not, why (each failed fork left nothing behind); when none could be
    made, the error that refused the first.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `forks` (forks done of the count),
    then one `result` (status 201 and the batch) or `error` (the status and error listed here).

    Args:
        id (str):
        body (ForkRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ForkBatch
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
    body: ForkRequest | None | Unset = UNSET,
) -> Response[ErrorBody | ForkBatch]:
    """Fork a snapshot `count` times (1 to 256): the sandboxes are made concurrently. Answers 201 with the
    forks made and, when some were not, why (each failed fork left nothing behind); when none could be
    made, the error that refused the first.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `forks` (forks done of the count),
    then one `result` (status 201 and the batch) or `error` (the status and error listed here).

    Args:
        id (str):
        body (ForkRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorBody | ForkBatch]
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
    body: ForkRequest | None | Unset = UNSET,
) -> ErrorBody | ForkBatch | None:
    """Fork a snapshot `count` times (1 to 256): the sandboxes are made concurrently. Answers 201 with the
    forks made and, when some were not, why (each failed fork left nothing behind); when none could be
    made, the error that refused the first.

     With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
    `ProgressEvent` per line: `progress` lines of phase `forks` (forks done of the count),
    then one `result` (status 201 and the batch) or `error` (the status and error listed here).

    Args:
        id (str):
        body (ForkRequest | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorBody | ForkBatch
    """

    return (
        await asyncio_detailed(
            id=id,
            client=client,
            body=body,
        )
    ).parsed
