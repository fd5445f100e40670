//! Deadlines for slow clients (slowloris): a connection that trickles its
//! first bytes, its headers or its body holds a task, a socket and buffers;
//! these bound how long.
//!
//! - [`FirstBytes`]: a new connection must send the first
//!   [`PROTOCOL_BYTES`] bytes (enough to tell HTTP/1.1 from the HTTP/2
//!   preface) within a deadline, or its reads fail. hyper's own
//!   `header_read_timeout` starts only once the protocol is known.
//! - [`DeadlineBody`]: a request body must be complete within a deadline
//!   counted from when its headers arrived.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The deadlines of one HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// For the first bytes of a connection and for each request's headers.
    pub header: Duration,
    /// For each request's body, from when its headers arrived.
    pub body: Duration,
}

/// The length of the HTTP/2 connection preface; HTTP/1.1 request lines are
/// longer than it, so both protocols are known once this many bytes arrived.
pub const PROTOCOL_BYTES: usize = 24;

/// A connection whose reads fail with `TimedOut` when its first
/// [`PROTOCOL_BYTES`] bytes have not arrived by a deadline. Writes pass through.
pub struct FirstBytes<S> {
    inner: S,
    /// `None` once enough bytes were read.
    deadline: Option<Pin<Box<Sleep>>>,
    read: usize,
}

impl<S> FirstBytes<S> {
    pub fn new(inner: S, timeout: Duration) -> FirstBytes<S> {
        FirstBytes {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            read: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read += buf.filled().len() - before;
                if this.read >= PROTOCOL_BYTES {
                    this.deadline = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent no request within the read timeout",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for FirstBytes<tokio::net::TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// A request body was not complete within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// Whether `error` (or one of its sources) is a [`BodyTimeout`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A request body that fails with [`BodyTimeout`] once its deadline passed.
pub struct DeadlineBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, timeout: Duration) -> DeadlineBody<B> {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + timeout)),
            timeout,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Some(Err(Box::new(BodyTimeout(this.timeout)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_and_a_talking_one_does_not() {
        let (client, server) = tokio::io::duplex(1024);
        let mut silent = FirstBytes::new(server, Duration::from_secs(5));
        let mut buf = [0u8; 64];
        let err = silent.read(&mut buf).await.expect_err("timed out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(client);

        let (mut client, server) = tokio::io::duplex(1024);
        let mut talking = FirstBytes::new(server, Duration::from_secs(5));
        client.write_all(&[b'x'; 10]).await.expect("write");
        assert_eq!(talking.read(&mut buf).await.expect("read"), 10);
        // 10 bytes are not enough to know the protocol: the deadline still holds.
        let err = talking.read(&mut buf).await.expect_err("timed out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (mut client, server) = tokio::io::duplex(1024);
        let mut talking = FirstBytes::new(server, Duration::from_secs(5));
        client
            .write_all(&[b'x'; PROTOCOL_BYTES])
            .await
            .expect("write");
        assert_eq!(talking.read(&mut buf).await.expect("read"), PROTOCOL_BYTES);
        // Past the preface the deadline is gone: a read waits as long as it takes.
        let read = tokio::time::timeout(Duration::from_secs(3600), talking.read(&mut buf)).await;
        assert!(read.is_err(), "still waiting after an hour: {read:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_past_its_deadline_fails_with_body_timeout() {
        use futures_util::StreamExt;
        use http_body_util::BodyExt;
        // One frame, then nothing: a client that stopped sending mid-body.
        let frames = futures_util::stream::iter([Ok::<_, io::Error>(Frame::data(
            Bytes::from_static(b"part"),
        ))])
        .chain(futures_util::stream::pending());
        let body = DeadlineBody::new(
            http_body_util::StreamBody::new(frames),
            Duration::from_secs(2),
        );
        let err = body.collect().await.expect_err("timed out");
        assert!(is_body_timeout(&*err), "{err}");
    }
}
