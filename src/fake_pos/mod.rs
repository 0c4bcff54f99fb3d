//! A fake of the legacy POS server, for tests and local runs: the list endpoint and the file
//! downloads over a directory of export files, with injectable faults.
//!
//! - `POST /fetch_list2.php` with the form fields `branch`, `pos`, `date` answers with the
//!   comma-joined names (sorted, no spaces) of the directory's files named
//!   `a_<branch>_<pos>_<type>_<date>_…`; an empty body when none match. A request missing a
//!   field gets the legacy error text, as a PHP script without its input plausibly would.
//! - `GET /<name>` answers with the bytes of the directory's file of exactly that name (the
//!   name is compared with the directory's entries, never joined into a path), or 404.
//! - `GET`/`POST`/`DELETE /__faults` read, replace or clear the fault rules (JSON, see
//!   [`faults`]); `GET /__requests` returns the request log. These are never faulted.
//!
//! The same code serves in-process tests ([`FakePos::start`] on port 0, faults changed
//! through [`FakePos::faults`]) and the `fetch-worker fake-pos` subcommand. It is built on
//! hyper's HTTP/1 server with one task per connection; a reset is a real TCP RST (`SO_LINGER`
//! 0, then close), and a truncated body really declares the full `Content-Length`.
//!
//! Listing the directory on every request keeps the fake stateless: tests may add or remove
//! files while it runs.

pub mod faults;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub use faults::{Fault, FaultRule, FaultSpecError, Faults, Plan, Target};

/// The error text the legacy list endpoint was seen to return (`fetch_list2.php` in the
/// samples).
pub const LEGACY_ERROR_BODY: &str =
    "An error occurred, check your Internet or contact a technician.";

/// The page served by the [`Fault::Html`] fault.
pub const HTML_BODY: &str = "<!DOCTYPE html>\n<html><head><title>Maintenance</title></head>\
    <body><h1>Service temporarily unavailable</h1></body></html>\n";

/// The path of the list endpoint.
pub const LIST_PATH: &str = "/fetch_list2.php";

/// The largest request body read (list forms and fault rules are tiny).
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// How long a truncated body waits after its first half before the connection is cut, so the
/// half really reaches the client first.
const TRUNCATE_PAUSE: Duration = Duration::from_millis(50);

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// The HTTP method: `POST` for the list, `GET` for downloads.
    pub method: String,
    /// The path (without the query).
    pub path: String,
    /// The kind of request, for fault matching (`Any` for admin and unknown routes).
    pub target: Target,
    /// The fault that answered it, if any (delays not counted).
    pub fault: Option<Fault>,
}

/// What every connection task shares.
#[derive(Debug)]
struct Shared {
    /// The directory served.
    dir: PathBuf,
    /// The fault rules.
    faults: Faults,
    /// Every request, in arrival order.
    log: Mutex<Vec<RequestRecord>>,
}

impl Shared {
    fn record(&self, record: RequestRecord) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
    }
}

/// A running fake POS server. Dropping it stops the server.
#[derive(Debug)]
pub struct FakePos {
    /// The bound address (the real port when started on port 0).
    addr: SocketAddr,
    /// State shared with the connection tasks.
    shared: Arc<Shared>,
    /// Stops the accept loop and every connection.
    cancel: CancellationToken,
    /// The accept loop.
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FakePos {
    /// Binds `addr` (port 0 for an ephemeral port) and serves `dir` with `faults` until
    /// stopped. Must be called within a tokio runtime.
    ///
    /// # Errors
    ///
    /// The bind error.
    pub async fn start(
        dir: impl Into<PathBuf>,
        addr: SocketAddr,
        faults: Faults,
    ) -> io::Result<FakePos> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            dir: dir.into(),
            faults,
            log: Mutex::new(Vec::new()),
        });
        let cancel = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, shared.clone(), cancel.clone()));
        Ok(FakePos {
            addr,
            shared,
            cancel,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/fetch_list2.php`: the `POS_LIST_URL` for this fake.
    pub fn list_url(&self) -> String {
        format!("http://{}{LIST_PATH}", self.addr)
    }

    /// `http://<addr>/`: the `POS_FILE_BASE_URL` for this fake.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The live fault rules: changes apply to the next request.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests of this kind were received (`Any` counts all).
    pub fn count(&self, target: Target) -> usize {
        self.requests()
            .iter()
            .filter(|r| target == Target::Any || r.target == target)
            .count()
    }

    /// Stops accepting, closes every connection, and waits for the accept loop to end.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakePos {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Accepts connections until cancelled, one task each.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::debug!(error = %e, "fake-pos accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(stream, shared.clone(), cancel.clone()));
    }
}

/// Serves one connection with hyper until it closes, fails, or the server stops.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, cancel: CancellationToken) {
    let reset = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(ResetOnDrop {
        stream,
        reset: reset.clone(),
    });
    let service = service_fn(move |request| {
        let shared = shared.clone();
        let reset = reset.clone();
        async move { handle(request, &shared, &reset).await }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::select! {
        _ = cancel.cancelled() => {}
        result = connection => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "fake-pos connection ended with an error");
            }
        }
    }
}

/// A TCP stream that, once `reset` is set, closes with `SO_LINGER` 0: the kernel then sends
/// RST instead of FIN, which is what a crashed or overloaded server looks like to a client.
struct ResetOnDrop {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The body type of every response.
type Body = BoxBody<Bytes, io::Error>;

/// Why a request got no response: the connection is reset.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by fault")]
struct ResetByFault;

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", body)
}

/// Routes one request, applying the faults planned for it.
async fn handle(
    request: Request<Incoming>,
    shared: &Shared,
    reset: &AtomicBool,
) -> Result<Response<Body>, ResetByFault> {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    if path.starts_with("/__") {
        let response = admin(request, shared).await;
        shared.record(RequestRecord {
            method: method.to_string(),
            path,
            target: Target::Any,
            fault: None,
        });
        return Ok(response);
    }
    let target = match (&method, path.as_str()) {
        (&Method::POST, LIST_PATH) => Target::List,
        (&Method::GET, _) => Target::Download,
        _ => Target::Any,
    };
    let plan = shared.faults.plan(target, &path);
    shared.record(RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        target,
        fault: plan.fault.clone(),
    });
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let normal = match target {
        Target::List => list(request, shared).await,
        Target::Download => download(&path, shared).await,
        Target::Any => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    };
    Ok(match plan.fault {
        None => normal,
        Some(Fault::Html) => full(StatusCode::OK, "text/html; charset=utf-8", HTML_BODY),
        Some(Fault::ErrorBody) => text(StatusCode::OK, LEGACY_ERROR_BODY),
        Some(Fault::ListBody { body }) => text(StatusCode::OK, body),
        Some(Fault::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text(status, format!("fault: HTTP {status}\n"))
        }
        Some(Fault::Delay { .. }) => normal,
        Some(Fault::Truncate) => truncated(normal).await,
        Some(Fault::Chunked) => chunked(normal).await,
        Some(Fault::Redirect { location, status }) => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(StatusCode::is_redirection)
                .unwrap_or(StatusCode::FOUND);
            let mut response = text(status, format!("moved to {location}\n"));
            if let Ok(value) = HeaderValue::from_str(&location) {
                response
                    .headers_mut()
                    .insert(hyper::header::LOCATION, value);
            }
            response
        }
        Some(Fault::Reset) => {
            reset.store(true, Ordering::SeqCst);
            return Err(ResetByFault);
        }
    })
}

/// The same response with its full `Content-Length` but only the first half of its body,
/// after which the body fails and hyper closes the connection.
async fn truncated(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let half = bytes.slice(..bytes.len() / 2);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let frames = futures_util::stream::unfold(Some(half), |state| async move {
        match state {
            Some(half) => Some((Ok(Frame::data(half)), None)),
            None => {
                tokio::time::sleep(TRUNCATE_PAUSE).await;
                let cut: Result<Frame<Bytes>, io::Error> =
                    Err(io::Error::other("body truncated by fault"));
                Some((cut, None))
            }
        }
    });
    Response::from_parts(parts, StreamBody::new(frames).boxed())
}

/// The same response streamed in 4 KiB frames without `Content-Length`, so hyper sends it
/// with chunked transfer encoding.
async fn chunked(response: Response<Body>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    parts.headers.remove(CONTENT_LENGTH);
    let pieces: Vec<Result<Frame<Bytes>, io::Error>> = (0..bytes.len())
        .step_by(4096)
        .map(|at| Ok(Frame::data(bytes.slice(at..(at + 4096).min(bytes.len())))))
        .collect();
    let frames = futures_util::stream::iter(pieces);
    Response::from_parts(parts, StreamBody::new(frames).boxed())
}

/// Reads a small request body.
async fn read_body(request: Request<Incoming>) -> Option<Bytes> {
    Limited::new(request.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// `POST /fetch_list2.php` with form fields `branch`, `pos`, `date`: the names of the
/// directory's files of that day, sorted and comma-separated, as the legacy endpoint answers;
/// without all three fields, the legacy error text (with status 200, as legacy).
async fn list(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let Some(body) = read_body(request).await else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "request too large\n");
    };
    let (mut branch, mut pos, mut date) = (None, None, None);
    for (key, value) in form_urlencoded::parse(&body) {
        match key.as_ref() {
            "branch" => branch = Some(value.into_owned()),
            "pos" => pos = Some(value.into_owned()),
            "date" => date = Some(value.into_owned()),
            _ => {}
        }
    }
    let (Some(branch), Some(pos), Some(date)) = (branch, pos, date) else {
        return text(StatusCode::OK, LEGACY_ERROR_BODY);
    };
    let prefix = format!("a_{branch}_{pos}_");
    let mut names: Vec<String> = file_names(&shared.dir)
        .await
        .into_iter()
        .filter(|name| {
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.split('_').nth(1))
                .is_some_and(|d| d == date)
        })
        .collect();
    names.sort();
    text(StatusCode::OK, names.join(","))
}

/// `GET /<name>`: that file of the directory as `text/csv`; 404 when it is not there, 500
/// when it cannot be read.
async fn download(path: &str, shared: &Shared) -> Response<Body> {
    let wanted = path.strip_prefix('/').unwrap_or(path);
    let found = file_names(&shared.dir)
        .await
        .into_iter()
        .find(|name| name == wanted);
    let Some(name) = found else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    match tokio::fs::read(shared.dir.join(&name)).await {
        Ok(bytes) => full(StatusCode::OK, "text/csv", bytes),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("read failed: {e}\n"),
        ),
    }
}

/// The names of the regular files directly in `dir` (UTF-8 names only).
async fn file_names(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return names;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let is_file = entry.file_type().await.is_ok_and(|t| t.is_file());
        if let (true, Ok(name)) = (is_file, entry.file_name().into_string()) {
            names.push(name);
        }
    }
    names
}

/// `/__faults` and `/__requests`.
async fn admin(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let json = |value: serde_json::Result<String>| match value {
        Ok(s) => full(StatusCode::OK, "application/json", s),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let method = request.method().clone();
    match (method, request.uri().path()) {
        (Method::GET, "/__faults") => json(serde_json::to_string(&shared.faults.rules())),
        (Method::DELETE, "/__faults") => {
            shared.faults.clear();
            json(Ok("[]".to_string()))
        }
        (Method::POST, "/__faults") => {
            let Some(body) = read_body(request).await else {
                return text(StatusCode::PAYLOAD_TOO_LARGE, "request too large\n");
            };
            match Faults::parse_rules(&String::from_utf8_lossy(&body)) {
                Ok(rules) => {
                    shared.faults.set(rules);
                    json(serde_json::to_string(&shared.faults.rules()))
                }
                Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            }
        }
        (Method::GET, "/__requests") => {
            let log = shared.log.lock().unwrap_or_else(|e| e.into_inner()).clone();
            json(serde_json::to_string(&log))
        }
        _ => text(StatusCode::NOT_FOUND, "unknown admin route\n"),
    }
}
