//! `--lava-serve ADDR`: a small read-only HTTP server for one run, so that a lab's
//! workers can fetch our kernels and initramfs. It answers GET (and HEAD) for the
//! files directly in one directory and nothing else, and stops when dropped.

use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct Server {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` (host:port) and serves the files of `dir`.
    pub fn start(addr: &str, dir: &Path) -> Result<Server> {
        let listener = TcpListener::bind(addr).with_context(|| {
            format!(
                "--lava-serve {addr}: cannot listen there; give an address of this machine and a free port"
            )
        })?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, dir) = (stop.clone(), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let dir = dir.clone();
                    std::thread::spawn(move || {
                        let _ = answer(c, &dir);
                    });
                }
            }
        });
        Ok(Server { addr: local, stop, thread: Some(thread) })
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The file a request line names, if it is one of `dir`'s own (no path, no dot-files).
fn requested(line: &str, dir: &Path) -> Option<(bool, PathBuf)> {
    let mut words = line.split_whitespace();
    let method = words.next()?;
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    let name = words.next()?.strip_prefix('/')?;
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let path = dir.join(name);
    (ok && path.is_file()).then_some((head, path))
}

fn answer(c: TcpStream, dir: &Path) -> std::io::Result<()> {
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut reader = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    reader.by_ref().take(8192).read_line(&mut line)?;
    // The headers, up to the empty line (we need none of them).
    let mut h = String::new();
    while reader.by_ref().take(8192).read_line(&mut h)? > 2 {
        h.clear();
    }
    let mut out = c;
    match requested(&line, dir) {
        Some((head, path)) => {
            let mut f = std::fs::File::open(&path)?;
            let len = f.metadata()?.len();
            write!(out, "HTTP/1.0 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")?;
            if !head {
                std::io::copy(&mut f, &mut out)?;
            }
        }
        None => write!(out, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?,
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_directorys_own_files_are_served() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kernel-1"), b"KERNEL").unwrap();
        std::fs::write(dir.path().join(".hidden"), b"x").unwrap();
        let s = super::Server::start("127.0.0.1:0", dir.path()).unwrap();
        let get = |path: &str| {
            use std::io::{Read, Write};
            let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut v = String::new();
            c.read_to_string(&mut v).unwrap();
            v
        };
        let ok = get("/kernel-1");
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n") && ok.ends_with("\r\n\r\nKERNEL"), "{ok}");
        for bad in ["/../etc/passwd", "/.hidden", "/", "/%2e%2e/x", "/nope", "/a/b"] {
            assert!(get(bad).starts_with("HTTP/1.0 404"), "{bad}");
        }
        drop(s);
    }
}
