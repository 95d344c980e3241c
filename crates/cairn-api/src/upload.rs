//! Request bodies read as uploads (an image, a snapshot archive, files). A handler may refuse
//! an upload before it has read all of it (a bad archive, a name taken, a limit): the
//! refusal is then sent only once the client has finished sending, the rest read and
//! dropped (at most [`MAX_DRAIN`] bytes, for at most [`DRAIN_TIME`]), so that the client
//! reads the JSON error instead of a broken pipe.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Most bytes read and dropped after a refusal.
pub const MAX_DRAIN: u64 = 1 << 30;
/// Longest wait for the client to finish sending after a refusal.
pub const DRAIN_TIME: Duration = Duration::from_secs(30);

/// What reads the rest of a refused upload.
pub struct Drain(JoinHandle<()>);

/// `body` as a reader for the engine, and the [`Drain`] that finishes reading it.
pub fn reader(body: Body) -> (impl AsyncRead + Send + Unpin + 'static, Drain) {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    let task = tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut forwarding = true;
        let mut dropped = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) if forwarding => {
                    if let Err(refused) = tx.send(Ok(bytes)).await {
                        // The reader went away: from now on, read and drop.
                        forwarding = false;
                        if let Ok(bytes) = refused.0 {
                            dropped += bytes.len() as u64;
                        }
                    }
                }
                Ok(bytes) => {
                    dropped += bytes.len() as u64;
                    if dropped > MAX_DRAIN {
                        break;
                    }
                }
                Err(e) => {
                    if forwarding {
                        let _ = tx.send(Err(std::io::Error::other(e))).await;
                    }
                    break;
                }
            }
        }
    });
    let chunks =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    (
        tokio_util::io::StreamReader::new(Box::pin(chunks)),
        Drain(task),
    )
}

impl Drain {
    /// Hands `answer` back once the upload is read to its end, when it is an error (a
    /// success has read it all already).
    pub async fn settle<T, E>(self, answer: Result<T, E>) -> Result<T, E> {
        if answer.is_err() {
            let _ = tokio::time::timeout(DRAIN_TIME, self.0).await;
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_refused_upload_is_read_to_its_end_before_the_answer() {
        let data: Vec<Result<Bytes, std::io::Error>> = (0..64)
            .map(|_| Ok(Bytes::from(vec![7u8; 64 << 10])))
            .collect();
        let body = Body::from_stream(futures_util::stream::iter(data));
        let (mut r, drain) = reader(body);
        let mut first = vec![0u8; 1000];
        r.read_exact(&mut first).await.unwrap();
        drop(r);
        let answer: Result<(), &str> = drain.settle(Err("refused")).await;
        assert_eq!(answer, Err("refused"));
    }

    #[tokio::test]
    async fn an_upload_read_whole_arrives_whole() {
        let body = Body::from(vec![1u8; 300_000]);
        let (mut r, drain) = reader(body);
        let mut all = Vec::new();
        r.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), 300_000);
        assert_eq!(drain.settle(Ok::<_, ()>(1)).await, Ok(1));
    }
}
