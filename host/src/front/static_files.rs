//! Static files beside the functions (`--static DIR`): plain HTTP GET and HEAD on the
//! WebSocket listener, for pages and scripts that talk to the functions from a browser.
//!
//! Only requests that are not WebSocket upgrades are looked up here. A file that exists
//! answers, and a directory answers with its `index.html`. A path that names nothing here goes
//! on to the function routes when it could be a function's name, so `GET /chat` still gets the
//! function's 426 when the directory has no `chat` file; any other path (`/page.html`,
//! `/a/b`, `/dir/`) cannot reach a function, so it gets a plain 404 saying there is no such
//! file rather than one about functions.
//!
//! What may be served is decided twice: the request path is checked segment by segment (no
//! `..`, no hidden names, no encoded separators), and the file found is canonicalized and must
//! still lie inside the canonical root, so a symlink cannot lead out of the directory.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::io::Read;

use crate::functions::is_valid_function_name;

/// Largest file served; larger files are refused with 403 rather than streamed, since what
/// belongs here is a page, its scripts and its images.
pub const MAX_STATIC_FILE: u64 = 16 << 20;

/// Why a static directory cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StaticDirError {
    #[error("cannot open the static directory {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("the static directory {0} is not a directory")]
    NotADirectory(PathBuf),
}

/// The directory whose files are served.
#[derive(Debug)]
pub struct StaticFiles {
    /// Canonical: every file served must canonicalize to a path below it.
    root: PathBuf,
}

/// What a request path leads to.
#[derive(Debug, PartialEq, Eq)]
enum Lookup {
    File(PathBuf),
    /// A directory named without its trailing slash: relative links in its index would
    /// resolve against the parent, so the client is sent to `path/` first.
    AddSlash,
    /// Nothing to serve: the request goes on to the function routes if it could be a
    /// function's name.
    Missing,
    /// A directory named with its trailing slash that has no `index.html`.
    NoIndex,
    /// A path no file may have (`..`, encoded separators, NUL): 400 with the reason.
    Invalid(&'static str),
}

impl StaticFiles {
    pub fn new(dir: &Path) -> Result<Self, StaticDirError> {
        let root = std::fs::canonicalize(dir).map_err(|source| StaticDirError::Open {
            path: dir.to_path_buf(),
            source,
        })?;
        if !root.is_dir() {
            return Err(StaticDirError::NotADirectory(dir.to_path_buf()));
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolves a request path (as sent, percent-encoded) to a file below the root. Blocking:
    /// it touches the file system.
    fn lookup(&self, request_path: &str) -> Lookup {
        let segments = match checked_segments(request_path) {
            Ok(segments) => segments,
            Err(reason) => return Lookup::Invalid(reason),
        };
        let mut path = self.root.clone();
        path.extend(&segments);
        let Some(found) = self.inside_root(&path) else {
            return Lookup::Missing;
        };
        if !found.is_dir() {
            // `file/` names no directory.
            return if request_path.ends_with('/') {
                Lookup::Missing
            } else {
                Lookup::File(found)
            };
        }
        let index = self.inside_root(&found.join("index.html"));
        match (index, request_path.ends_with('/')) {
            (Some(index), true) => Lookup::File(index),
            (Some(_), false) => Lookup::AddSlash,
            (None, true) => Lookup::NoIndex,
            // `GET /name` of a directory without an index may still be meant for a function.
            (None, false) => Lookup::Missing,
        }
    }

    /// The canonical form of `path` when it exists and lies inside the root.
    fn inside_root(&self, path: &Path) -> Option<PathBuf> {
        let canonical = std::fs::canonicalize(path).ok()?;
        canonical.starts_with(&self.root).then_some(canonical)
    }
}

/// The decoded segments of a request path, or why no file may be named so. Empty segments
/// (`a//b`, the trailing slash) and `.` are skipped; names starting with a dot (`..`,
/// `.git`, `.env`) are never served.
fn checked_segments(request_path: &str) -> Result<Vec<String>, &'static str> {
    let mut segments = Vec::new();
    for raw in request_path.split('/') {
        let segment = percent_decode(raw).ok_or("the path is not valid percent-encoded UTF-8")?;
        if segment.contains(['/', '\\']) {
            return Err("the path has an encoded separator");
        }
        if segment.contains('\0') {
            return Err("the path has a NUL byte");
        }
        if segment == ".." {
            return Err("the path leads to a parent directory");
        }
        if segment.is_empty() || segment == "." {
            continue;
        }
        if segment.starts_with('.') {
            return Err("hidden files are not served");
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// The Content-Type for a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("md") => "text/markdown; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    let headers = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    (status, headers, message.into()).into_response()
}

/// Middleware in front of the function routes: serves a static file when one matches a
/// plain GET or HEAD, and passes everything else on.
pub async fn serve_or_pass(
    State(files): State<Arc<StaticFiles>>,
    request: Request,
    next: Next,
) -> Response {
    if fastwebsockets::upgrade::is_upgrade_request(&request) {
        return next.run(request).await;
    }
    let head = match *request.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served here",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
    };
    let uri = request.uri().clone();
    // The file system is used synchronously on the blocking pool, where a slow disk cannot
    // stall the WebSocket sessions.
    let answer = tokio::task::spawn_blocking(move || answer(&files, &uri, head)).await;
    match answer {
        Ok(Some(response)) => response,
        Ok(None) => next.run(request).await,
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the file could not be read",
        ),
    }
}

/// Whether a request path could reach a function route: `/` and one valid function name.
fn could_be_a_function(request_path: &str) -> bool {
    request_path
        .strip_prefix('/')
        .is_some_and(is_valid_function_name)
}

/// The answer for a GET (or HEAD) of `uri`, or `None` when no file matches and the request
/// goes on to the functions. Blocking.
fn answer(files: &StaticFiles, uri: &Uri, head: bool) -> Option<Response> {
    let response = match files.lookup(uri.path()) {
        Lookup::File(path) => match read_file(&path, head) {
            Ok(file) => file.into_response(&path),
            Err(error) => {
                tracing::debug!(path = %path.display(), "cannot serve a static file: {error}");
                plain(StatusCode::NOT_FOUND, "no such file")
            }
        },
        Lookup::AddSlash => {
            let location = match uri.query() {
                Some(query) => format!("{}/?{query}", uri.path()),
                None => format!("{}/", uri.path()),
            };
            match HeaderValue::from_str(&location) {
                Ok(location) => (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, location)],
                )
                    .into_response(),
                Err(_) => plain(StatusCode::BAD_REQUEST, "the path cannot be redirected"),
            }
        }
        Lookup::Missing if could_be_a_function(uri.path()) => return None,
        Lookup::Missing => plain(
            StatusCode::NOT_FOUND,
            format!("no such file: `{}`", uri.path()),
        ),
        Lookup::NoIndex => plain(
            StatusCode::NOT_FOUND,
            format!(
                "no such file: `{}` is a directory without an index.html",
                uri.path()
            ),
        ),
        Lookup::Invalid(reason) => plain(StatusCode::BAD_REQUEST, reason),
    };
    Some(response)
}

/// Why a file found could not be sent.
#[derive(Debug, thiserror::Error)]
enum FileError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a regular file")]
    NotAFile,
}

/// A file read for an answer: its size, and its bytes unless the request was a HEAD.
enum FileRead {
    Contents { size: u64, bytes: Option<Vec<u8>> },
    TooLarge,
}

fn read_file(path: &Path, head: bool) -> Result<FileRead, FileError> {
    let mut file = std::fs::File::open(path)?;
    // The size is taken from the opened file, so a file swapped after the lookup is measured
    // as what is actually read.
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(FileError::NotAFile);
    }
    let size = metadata.len();
    if size > MAX_STATIC_FILE {
        return Ok(FileRead::TooLarge);
    }
    if head {
        return Ok(FileRead::Contents { size, bytes: None });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // Bounded even if the file grows while it is read.
    (&mut file).take(MAX_STATIC_FILE).read_to_end(&mut bytes)?;
    Ok(FileRead::Contents {
        size: bytes.len() as u64,
        bytes: Some(bytes),
    })
}

impl FileRead {
    fn into_response(self, path: &Path) -> Response {
        let (size, bytes) = match self {
            FileRead::Contents { size, bytes } => (size, bytes),
            FileRead::TooLarge => {
                return plain(
                    StatusCode::FORBIDDEN,
                    format!("the file is larger than the {MAX_STATIC_FILE} bytes served"),
                );
            }
        };
        let mut response = Response::new(bytes.map(Body::from).unwrap_or_else(Body::empty));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        // Pages under development change often; the browser revalidates instead of guessing.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_leave_the_directory_or_hide_separators_are_invalid() {
        for path in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/etc/passwd",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%00b",
            "/.git/config",
            "/%ff",
            "/a%2",
        ] {
            assert!(checked_segments(path).is_err(), "{path} must be refused");
        }
    }

    #[test]
    fn ordinary_paths_are_decoded_into_segments() {
        assert_eq!(
            checked_segments("/demo/chat.html"),
            Ok(vec!["demo".to_owned(), "chat.html".to_owned()])
        );
        assert_eq!(
            checked_segments("//a/./my%20page.html"),
            Ok(vec!["a".to_owned(), "my page.html".to_owned()])
        );
        assert_eq!(checked_segments("/"), Ok(vec![]));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(
            content_type(Path::new("a/wsfn.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("x.MJS")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("f.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("i.svg")), "image/svg+xml");
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }

    #[test]
    fn symlinks_may_not_lead_out_of_the_directory() {
        let base = std::env::temp_dir().join(format!("wsfn-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(base.join("secret.txt"), "secret").unwrap();
        std::fs::write(root.join("sub/index.html"), "<p>hi</p>").unwrap();
        std::fs::write(root.join("page.html"), "<p>page</p>").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("page.html"), root.join("alias.html")).unwrap();
        let files = StaticFiles::new(&root).unwrap();

        assert_eq!(files.lookup("/leak.txt"), Lookup::Missing);
        assert_eq!(
            files.lookup("/alias.html"),
            Lookup::File(files.root().join("page.html")),
            "a link that stays inside is followed"
        );
        assert_eq!(files.lookup("/sub"), Lookup::AddSlash);
        assert_eq!(
            files.lookup("/sub/"),
            Lookup::File(files.root().join("sub/index.html"))
        );
        assert_eq!(files.lookup("/page.html/"), Lookup::Missing);
        assert_eq!(files.lookup("/nothing"), Lookup::Missing);
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_directory_without_an_index_is_no_file() {
        let base = std::env::temp_dir().join(format!("wsfn-static-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("bare")).unwrap();
        let files = StaticFiles::new(&base).unwrap();

        assert_eq!(files.lookup("/"), Lookup::NoIndex);
        assert_eq!(files.lookup("/bare/"), Lookup::NoIndex);
        assert_eq!(
            files.lookup("/bare"),
            Lookup::Missing,
            "without its slash it may name a function"
        );
        std::fs::write(base.join("index.html"), "<p>home</p>").unwrap();
        assert_eq!(
            files.lookup("/"),
            Lookup::File(files.root().join("index.html"))
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn only_a_single_plain_name_can_reach_a_function() {
        for name in ["/chat", "/Chat-Room_2"] {
            assert!(could_be_a_function(name), "{name}");
        }
        for path in ["/", "/nothing.html", "/a/b", "/chat/", "/my%20page", "chat"] {
            assert!(!could_be_a_function(path), "{path}");
        }
    }
}
