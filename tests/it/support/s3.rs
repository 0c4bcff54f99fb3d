//! A real S3 protocol server for tests: moto's server mode (`pip install "moto[server]"`,
//! installed by `tests/setup.sh`) on a free loopback port, one per test, and an HTTP fault
//! proxy in front of it that answers chosen requests with an error status or answers late.
//!
//! moto keeps everything in memory and checks neither signatures nor credentials, so raw
//! requests (without signing) read back exactly what the worker stored: objects, their
//! `x-amz-meta-*` headers, and unfinished multipart uploads.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use fetch_worker::pipeline::fetch::RetryPolicy;
use fetch_worker::pipeline::storage::S3Settings;
use fetch_worker::pipeline::storage::s3::Secret;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A moto server, killed when dropped.
pub struct TestS3 {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Its address.
    pub addr: SocketAddr,
    child: Child,
    http: reqwest::Client,
}

impl TestS3 {
    /// Starts moto on a free port and waits until it answers.
    pub async fn start() -> TestS3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with moto[server] is required (tests/setup.sh installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if http.get(format!("{endpoint}/")).send().await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        TestS3 {
            endpoint,
            addr: ([127, 0, 0, 1], port).into(),
            child,
            http,
        }
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, bucket: &str) {
        let r = self
            .http
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    /// Settings for `bucket` through `endpoint` (moto's own, or a proxy's), path-style, with
    /// test credentials and quick retries.
    pub fn settings_via(&self, endpoint: &str, bucket: &str) -> S3Settings {
        let mut s = S3Settings::new(bucket);
        s.endpoint = Some(endpoint.to_string());
        s.force_path_style = true;
        s.prefix = "raw".into();
        s.access_key_id = Some(Secret::new("testing"));
        s.secret_access_key = Some(Secret::new("testing-secret"));
        s.retry = RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        };
        s.request_timeout = Duration::from_secs(5);
        s.connect_timeout = Duration::from_secs(2);
        s
    }

    /// [`TestS3::settings_via`] moto itself.
    pub fn settings(&self, bucket: &str) -> S3Settings {
        self.settings_via(&self.endpoint, bucket)
    }

    /// A raw, unsigned GET of `bucket/key`: the status, the `x-amz-meta-sha256` header and the
    /// body.
    pub async fn get(&self, bucket: &str, key: &str) -> (u16, Option<String>, Vec<u8>) {
        // moto refuses anonymous reads of private objects but does not check signatures.
        let r = self
            .http
            .get(format!("{}/{bucket}/{key}", self.endpoint))
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
            )
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let sha = r
            .headers()
            .get("x-amz-meta-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, sha, r.bytes().await.unwrap().to_vec())
    }

    /// Every key in `bucket`.
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = self
            .http
            .get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        between_all(&body, "<Key>", "</Key>")
    }

    /// The multipart uploads of `bucket` that were neither completed nor aborted.
    pub async fn pending_uploads(&self, bucket: &str) -> usize {
        let body = self
            .http
            .get(format!("{}/{bucket}?uploads", self.endpoint))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.matches("<UploadId>").count()
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every text between `open` and `close` in `body`.
fn between_all(body: &str, open: &str, close: &str) -> Vec<String> {
    body.split(open)
        .skip(1)
        .filter_map(|rest| rest.split(close).next())
        .map(str::to_string)
        .collect()
}

/// What the fault proxy does to the requests a rule matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and an S3 error body of this code, without forwarding.
    Status(u16, &'static str),
    /// Wait this long, then forward (the client may give up first).
    Delay(Duration),
}

/// One rule: requests whose method and path-and-query contain the given texts get the fault,
/// `times` times.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `PUT`, `POST`, `GET`, `HEAD`, `DELETE`, or "" for any.
    pub method: &'static str,
    /// A text the path and query must contain ("" for any).
    pub contains: &'static str,
    /// What happens.
    pub fault: Fault,
    /// How many more requests it applies to.
    pub times: u32,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    /// `METHOD path?query` of every request seen, faulted or not.
    seen: Vec<String>,
    /// How many requests a rule answered or delayed.
    faulted: u64,
}

/// An HTTP proxy on loopback in front of an S3 server, with injectable faults. Stops when
/// dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = upstream.trim_end_matches('/').to_string();
        let client = reqwest::Client::new();
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let state = state.clone();
                    let upstream = upstream.clone();
                    let client = client.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            forward(req, state.clone(), upstream.clone(), client.clone())
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        FaultProxy {
            endpoint,
            state,
            task,
        }
    }

    /// Adds a rule (rules are tried in the order added).
    pub fn add(&self, rule: Rule) {
        self.state.lock().unwrap().rules.push(rule);
    }

    /// Requests seen so far whose `METHOD path?query` contains both texts.
    pub fn count(&self, method: &str, contains: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.starts_with(method) && s.contains(contains))
            .count()
    }

    /// How many requests were faulted.
    pub fn faulted(&self) -> u64 {
        self.state.lock().unwrap().faulted
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    upstream: String,
    client: reqwest::Client,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let fault = {
        let mut s = state.lock().unwrap();
        s.seen.push(format!("{method} {target}"));
        let hit = s.rules.iter_mut().find(|r| {
            r.times > 0
                && (r.method.is_empty() || r.method == method.as_str())
                && target.contains(r.contains)
        });
        let fault = hit.map(|r| {
            r.times -= 1;
            r.fault.clone()
        });
        if fault.is_some() {
            s.faulted += 1;
        }
        fault
    };
    match fault {
        Some(Fault::Status(status, code)) => {
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            return Ok(Response::builder()
                .status(status)
                .header("content-type", "application/xml")
                .body(Full::new(Bytes::from(body)))
                .unwrap());
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let headers = req.headers().clone();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let Ok(body) = body else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::new(Bytes::new()))
            .unwrap());
    };
    let mut forwarded = client.request(method, format!("{upstream}{target}"));
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            forwarded = forwarded.header(name, value);
        }
    }
    let answer = match forwarded.body(body).send().await {
        Ok(a) => a,
        Err(_) => {
            return Ok(Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Full::new(Bytes::new()))
                .unwrap());
        }
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name != "transfer-encoding" && name != "connection" {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    Ok(response.body(Full::new(bytes)).unwrap())
}
