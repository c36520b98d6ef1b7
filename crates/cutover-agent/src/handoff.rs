//! Listener hand-off between an old and a new router over a unix socket (`SCM_RIGHTS`).
//!
//! With `SO_REUSEPORT` alone, connections queued on the old router's listening socket when it closes
//! are reset. Passing the socket itself instead means it never closes: the new router accepts from the
//! very same queue, and the old one merely stops calling `accept`.
//!
//! Protocol: the new router connects to the old one's hand-off socket; the old one sends one byte
//! with the listener's file descriptor; the new one answers `1` (taken: the old router stops
//! accepting) or `0` (not for this address: the old router carries on).

use std::io::{self, IoSlice, IoSliceMut, Read as _, Write as _};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the router serving `path` for its listener. `Ok(None)` when no router answers there (the
/// normal case at a first start) or when its listener is not bound to `want` (port 0: any).
pub(crate) fn take_listener(path: &Path, want: SocketAddr) -> io::Result<Option<TcpListener>> {
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fd: Option<OwnedFd> = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for received in fds {
                fd.get_or_insert(received);
            }
        }
    }
    let Some(fd) = fd else {
        stream.write_all(b"0")?;
        return Ok(None);
    };
    let listener = TcpListener::from(fd);
    let got = listener.local_addr()?;
    let matches = got.ip() == want.ip() && (want.port() == 0 || got.port() == want.port());
    stream.write_all(if matches { b"1" } else { b"0" })?;
    Ok(matches.then_some(listener))
}

/// A duplicate of the router's listener for the hand-off; the router empties it when it shuts
/// down, so that nothing keeps the socket open (connections queued on it would wait in vain).
pub(crate) type Shared = Arc<Mutex<Option<TcpListener>>>;

/// Serves hand-off requests at `path` (in a thread of its own) until the shared listener is gone or
/// a new router took it; then calls `on_taken`. The path is replaced if it exists.
pub(crate) fn serve(
    path: &Path,
    listener: Shared,
    on_taken: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    let _ = std::fs::remove_file(path);
    let server = UnixListener::bind(path)?;
    server.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("cutover-router-handoff".to_owned())
        .spawn(move || {
            while listener
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .is_some()
            {
                let mut stream = match server.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(POLL);
                        continue;
                    }
                    Err(_) => {
                        std::thread::sleep(POLL);
                        continue;
                    }
                };
                if matches!(give(&mut stream, &listener), Ok(true)) {
                    on_taken();
                    return;
                }
            }
            // The socket file stays: a later router finds nobody there (connection refused) and
            // binds afresh. Removing it could remove a newer router's socket.
        })?;
    Ok(())
}

/// How often the hand-off thread looks for a new router or its router's end.
const POLL: Duration = Duration::from_millis(20);

fn give(stream: &mut UnixStream, listener: &Shared) -> io::Result<bool> {
    let guard = listener
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(listener) = guard.as_ref() else {
        return Ok(false);
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let fds = [listener.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &*stream,
        &[IoSlice::new(b"L")],
        &mut control,
        SendFlags::empty(),
    )?;
    let mut ack = [0u8; 1];
    stream.read_exact(&mut ack)?;
    Ok(ack == *b"1")
}
