//! One stream socket type over AF_VSOCK (rust-vmm's `vsock` crate) or TCP on 127.0.0.1.
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use vsock::{VMADDR_CID_ANY, VsockListener, VsockStream};

use crate::args::Transport;

/// A connected stream socket.
pub enum Stream {
    /// AF_VSOCK.
    Vsock(VsockStream),
    /// TCP (no Nagle delay).
    Tcp(TcpStream),
}

impl Stream {
    /// Connects to `cid:port` (vsock) or 127.0.0.1:`port` (TCP; `cid` ignored).
    pub fn connect(transport: Transport, cid: u32, port: u32) -> io::Result<Stream> {
        match transport {
            Transport::Vsock => VsockStream::connect_with_cid_port(cid, port).map(Stream::Vsock),
            Transport::Tcp => {
                let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, tcp_port(port)?))?;
                stream.set_nodelay(true)?;
                Ok(Stream::Tcp(stream))
            }
        }
    }

    /// Ends the write side: the peer reads EOF.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Vsock(stream) => stream.shutdown(Shutdown::Write),
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Write),
        }
    }

    /// Bounds how long a read waits (`None`: forever).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Vsock(stream) => stream.set_read_timeout(timeout),
            Stream::Tcp(stream) => stream.set_read_timeout(timeout),
        }
    }

    /// Reads and discards until the peer closes its side.
    pub fn wait_for_eof(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Vsock(stream) => stream.read(buffer),
            Stream::Tcp(stream) => stream.read(buffer),
        }
    }
}

/// Linux's ECONNRESET (the same number on arm64 and x86-64).
const ECONNRESET: i32 = 104;

/// A write error on a vsock stream, as the reset it is: Linux's vsock marks a connection the peer
/// (or cellvisor) reset with RST as shut down both ways, so the next write fails with EPIPE (or
/// ENOTCONN once closed) rather than ECONNRESET. The tool never writes after its own shutdown, so
/// either means the other end is gone: reported as `Connection reset by peer`, like TCP does.
fn vsock_write_error(error: io::Error) -> io::Error {
    match error.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected => {
            io::Error::from_raw_os_error(ECONNRESET)
        }
        _ => error,
    }
}

impl Write for Stream {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Vsock(stream) => stream.write(buffer).map_err(vsock_write_error),
            Stream::Tcp(stream) => stream.write(buffer),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Vsock(stream) => stream.flush(),
            Stream::Tcp(stream) => stream.flush(),
        }
    }
}

/// A listening socket.
pub enum Listener {
    /// AF_VSOCK, bound to any CID.
    Vsock(VsockListener),
    /// TCP, bound to 127.0.0.1.
    Tcp(TcpListener),
}

impl Listener {
    /// Listens on `port` (TCP port 0: any free port, see [`Listener::port`]).
    pub fn bind(transport: Transport, port: u32) -> io::Result<Listener> {
        match transport {
            Transport::Vsock => {
                VsockListener::bind_with_cid_port(VMADDR_CID_ANY, port).map(Listener::Vsock)
            }
            Transport::Tcp => {
                TcpListener::bind((Ipv4Addr::LOCALHOST, tcp_port(port)?)).map(Listener::Tcp)
            }
        }
    }

    /// The port listened on.
    #[cfg(test)]
    pub fn port(&self) -> io::Result<u32> {
        match self {
            Listener::Vsock(listener) => listener.local_addr().map(|address| address.port()),
            Listener::Tcp(listener) => listener.local_addr().map(|address| address.port().into()),
        }
    }

    /// The next connection and its peer as `CID:PORT` (TCP: `IP:PORT`).
    pub fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Vsock(listener) => {
                let (stream, peer) = listener.accept()?;
                Ok((
                    Stream::Vsock(stream),
                    format!("{}:{}", peer.cid(), peer.port()),
                ))
            }
            Listener::Tcp(listener) => {
                let (stream, peer) = listener.accept()?;
                stream.set_nodelay(true)?;
                Ok((Stream::Tcp(stream), peer.to_string()))
            }
        }
    }
}

fn tcp_port(port: u32) -> io::Result<u16> {
    u16::try_from(port).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{port} is not a TCP port"),
        )
    })
}

/// This cell's CID (IOCTL_VM_SOCKETS_GET_LOCAL_CID on /dev/vsock); an error when the kernel has no
/// vsock device (it then answers VMADDR_CID_ANY).
pub fn local_cid() -> io::Result<u32> {
    let cid = vsock::get_local_cid()
        .map_err(|error| io::Error::new(error.kind(), format!("/dev/vsock: {error}")))?;
    if cid == VMADDR_CID_ANY {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no vsock device (the kernel's local CID is VMADDR_CID_ANY)",
        ));
    }
    Ok(cid)
}
