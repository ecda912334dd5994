//! `--static DIR`: files over plain HTTP on the WebSocket listener, beside the functions.

use std::net::SocketAddr;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Host, TestDir, raw_upgrade, run_wsfn_host, within};

/// A plain HTTP answer, read until the host closes the connection.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `METHOD target` exactly as written (no normalisation of `..` or escapes, unlike an
/// HTTP client library) and reads the whole answer.
async fn http(addr: SocketAddr, method: &str, target: &str) -> Answer {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    within(&format!("the answer to {method} {target}"), async {
        let mut stream = TcpStream::connect(addr).await.expect("TCP connect");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("writing the request");
        let mut received = Vec::new();
        stream
            .read_to_end(&mut received)
            .await
            .expect("reading the answer");
        let end = received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = String::from_utf8(received[..end].to_vec()).expect("an ASCII head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        Answer {
            status,
            head,
            body: received[end + 4..].to_vec(),
        }
    })
    .await
}

/// A site with a page, a script, a subdirectory with an index, and a link that leads out.
fn site(dir: &TestDir) -> std::path::PathBuf {
    let root = dir.path().join("site");
    std::fs::create_dir_all(root.join("docs")).expect("create the site");
    std::fs::write(root.join("index.html"), "<h1>home</h1>").expect("write");
    std::fs::write(root.join("app.mjs"), "export const x = 1;\n").expect("write");
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").expect("write");
    std::fs::write(root.join(".secret"), "hidden").expect("write");
    std::fs::write(dir.path().join("outside.txt"), "outside the site").expect("write");
    std::os::unix::fs::symlink(dir.path().join("outside.txt"), root.join("escape.txt"))
        .expect("symlink");
    root
}

async fn host_serving(root: &Path) -> Host {
    Host::builder()
        .function("echo")
        .option("--static", root.to_str().expect("a UTF-8 path"))
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_served_with_their_type_and_functions_keep_their_routes() {
    let dir = TestDir::new();
    let host = host_serving(&site(&dir)).await;

    let page = http(host.addr(), "GET", "/").await;
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(page.text(), "<h1>home</h1>");
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );

    let script = http(host.addr(), "GET", "/app.mjs").await;
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8"),
        "module scripts need a JavaScript type"
    );

    let head = http(host.addr(), "HEAD", "/app.mjs").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("20"));
    assert!(head.body.is_empty(), "a HEAD answer has no body");

    let docs = http(host.addr(), "GET", "/docs").await;
    assert_eq!(docs.status, 301, "a directory is named with its slash");
    assert_eq!(docs.header("location"), Some("/docs/"));
    let docs = http(host.addr(), "GET", "/docs/").await;
    assert_eq!((docs.status, docs.text().as_str()), (200, "<h1>docs</h1>"));

    let function = http(host.addr(), "GET", "/echo").await;
    assert_eq!(
        function.status, 426,
        "a function without a file of its name still asks for an upgrade"
    );
    let upgrade = raw_upgrade(host.addr(), "app.mjs", &[]).await;
    assert_eq!(
        upgrade.status, 404,
        "an upgrade is for a function, even where a file has the name"
    );
    let mut client = host.connect("echo").await;
    assert_eq!(client.ask("still a function").await, "still a function");

    let missing = http(host.addr(), "GET", "/no/such/file.js").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(missing.text().contains("/no/such/file.js"));

    let post = http(host.addr(), "POST", "/app.mjs").await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_root_and_every_directory_serve_their_index_html() {
    let dir = TestDir::new();
    let root = site(&dir);
    std::fs::create_dir_all(root.join("docs/deeper")).expect("create a subdirectory");
    std::fs::write(root.join("docs/deeper/index.html"), "<h1>deeper</h1>").expect("write");
    std::fs::create_dir_all(root.join("bare")).expect("create a directory without an index");
    let host = host_serving(&root).await;

    for (target, page) in [
        ("/", "<h1>home</h1>"),
        ("/?room=lobby", "<h1>home</h1>"),
        ("/docs/", "<h1>docs</h1>"),
        ("/docs/deeper/", "<h1>deeper</h1>"),
    ] {
        let answer = http(host.addr(), "GET", target).await;
        assert_eq!(answer.status, 200, "{target}: {}", answer.head);
        assert_eq!(answer.text(), page, "{target}");
        assert_eq!(
            answer.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{target}"
        );
    }
    let head = http(host.addr(), "HEAD", "/").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("13"));
    let redirect = http(host.addr(), "GET", "/docs/deeper?x=1").await;
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/docs/deeper/?x=1"));

    let bare = http(host.addr(), "GET", "/bare/").await;
    assert_eq!(bare.status, 404, "{}", bare.head);
    assert_eq!(
        bare.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(
        bare.text().contains("no such file") && bare.text().contains("/bare/"),
        "a directory without an index.html says so: {}",
        bare.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_file_is_a_plain_404_and_a_missing_name_still_goes_to_the_functions() {
    let dir = TestDir::new();
    let host = host_serving(&site(&dir)).await;

    for target in [
        "/nothing.html",
        "/docs/nothing.js",
        "/app.mjs/",
        "/no/such/dir/",
    ] {
        let missing = http(host.addr(), "GET", target).await;
        assert_eq!(missing.status, 404, "{target}: {}", missing.head);
        assert_eq!(
            missing.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{target}"
        );
        let text = missing.text();
        assert!(
            text.contains("no such file") && text.contains(target),
            "{target} is named as a missing file: {text}"
        );
        assert!(!text.contains("function"), "{target}: {text}");
    }
    let head = http(host.addr(), "HEAD", "/nothing.html").await;
    assert_eq!(head.status, 404);
    assert!(head.body.is_empty(), "a HEAD answer has no body");

    let name = http(host.addr(), "GET", "/nothing").await;
    assert_eq!(name.status, 404);
    assert!(
        name.text().contains("no function named `nothing`"),
        "a plain name that is no file is still looked up as a function: {}",
        name.text()
    );
    let function = http(host.addr(), "GET", "/echo").await;
    assert_eq!(function.status, 426);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_outside_the_directory_or_hidden_is_served() {
    let dir = TestDir::new();
    let host = host_serving(&site(&dir)).await;

    for target in [
        "/../outside.txt",
        "/docs/../../outside.txt",
        "/%2e%2e/outside.txt",
        "/docs%2f..%2f..%2foutside.txt",
        "/docs%5cindex.html",
        "/.secret",
        "/app.mjs%00.html",
    ] {
        let answer = http(host.addr(), "GET", target).await;
        assert_eq!(
            answer.status, 400,
            "{target} must be refused: {}",
            answer.head
        );
        assert!(!answer.text().contains("outside the site"));
    }
    let escape = http(host.addr(), "GET", "/escape.txt").await;
    assert_eq!(
        escape.status, 404,
        "a symlink that leads out of the directory is as good as missing"
    );
    assert!(!escape.text().contains("outside the site"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_directory_that_does_not_exist_stops_the_start() {
    let dir = TestDir::new();
    let data = dir.data_dir();
    let output = run_wsfn_host(
        dir.path(),
        &[
            "run",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("a UTF-8 path"),
            "--static",
            "no-such-dir",
        ],
        &[],
    )
    .await;
    let message = output.expect_failure();
    assert!(
        message.contains("no-such-dir"),
        "the error names the directory: {message}"
    );
}
