//! `GET /metrics`: a scripted session against the real host, then the scrape parsed and each
//! counter checked to have moved by exactly what the session did.

use crate::support::{Admin, Exposition, Host, OCTET_STREAM, function_bytes, poll_until};

const CLIENTS: usize = 3;
const MESSAGES: usize = 4;

/// A distinct size for every message, so a byte counter that is off by a message shows.
fn size_of(client: usize, message: usize) -> usize {
    10 + 7 * client + message
}

/// A series (name and labels) and how much it must have moved.
type Expectation<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

async fn scrape(admin: &Admin) -> Exposition {
    let answer = admin.get("/metrics").await.expect_status(200);
    let content_type = answer.content_type.clone().unwrap_or_default();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{answer}"
    );
    let text = answer.text();
    assert!(
        text.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    Exposition::parse(&text)
}

/// How much a series moved between two scrapes.
fn moved(before: &Exposition, after: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_session_moves_every_counter_by_exactly_what_happened() {
    let host = Host::builder()
        .function("lifecycle")
        .function("faulty")
        .start()
        .await;
    let admin = host.admin();
    let before = scrape(&admin).await;
    let lifecycle = [("function", "lifecycle")];
    let faulty = [("function", "faulty")];
    assert_eq!(before.value("wsfn_deploys_total", &lifecycle), 1.0);
    assert!(
        before.value("wsfn_instances_idle", &lifecycle) >= 1.0,
        "the deploy left a warm instance"
    );

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(host.connect("lifecycle").await);
    }
    let open = scrape(&admin).await;
    assert_eq!(
        open.value("wsfn_connections_open", &lifecycle),
        CLIENTS as f64
    );

    let mut bytes = 0;
    for (c, client) in clients.iter_mut().enumerate() {
        for m in 0..MESSAGES {
            // Not a command of the fixture, so it is echoed back.
            let text = "m".repeat(size_of(c, m));
            assert_eq!(client.ask(&text).await, text);
            bytes += text.len();
        }
    }
    assert_eq!(
        host.refused_handshake_status("lifecycle?reject=403").await,
        403
    );
    let mut culprit = host.connect("faulty").await;
    culprit.send_text("trap").await;
    assert_eq!(culprit.expect_close().await.code, 1011);
    for client in clients {
        client.close(1000, "done").await;
    }

    // on-close runs after the close handshake: wait until the host has run all of them.
    let after = poll_until("every on-close has run", async || {
        let scraped = scrape(&admin).await;
        let closes = scraped.value(
            "wsfn_event_duration_seconds_count",
            &[("function", "lifecycle"), ("event", "close")],
        );
        (closes
            - before.value(
                "wsfn_event_duration_seconds_count",
                &[("function", "lifecycle"), ("event", "close")],
            )
            == CLIENTS as f64
            && scraped.value("wsfn_connections_open", &faulty) == 0.0)
            .then_some(scraped)
    })
    .await;

    let messages = (CLIENTS * MESSAGES) as f64;
    let expectations: &[Expectation] = &[
        (
            "wsfn_connections_accepted_total",
            &lifecycle,
            CLIENTS as f64,
        ),
        (
            "wsfn_connections_rejected_total",
            &[("function", "lifecycle"), ("status", "403")],
            1.0,
        ),
        ("wsfn_messages_in_total", &lifecycle, messages),
        ("wsfn_message_bytes_in_total", &lifecycle, bytes as f64),
        ("wsfn_messages_out_total", &lifecycle, messages),
        ("wsfn_message_bytes_out_total", &lifecycle, bytes as f64),
        (
            "wsfn_event_duration_seconds_count",
            &[("function", "lifecycle"), ("event", "connect")],
            CLIENTS as f64 + 1.0,
        ),
        (
            "wsfn_event_duration_seconds_count",
            &[("function", "lifecycle"), ("event", "message")],
            messages,
        ),
        (
            "wsfn_guest_faults_total",
            &[("function", "lifecycle"), ("kind", "trap")],
            0.0,
        ),
        ("wsfn_connections_accepted_total", &faulty, 1.0),
        ("wsfn_messages_in_total", &faulty, 1.0),
        ("wsfn_message_bytes_in_total", &faulty, 4.0),
        ("wsfn_messages_out_total", &faulty, 0.0),
        (
            "wsfn_guest_faults_total",
            &[("function", "faulty"), ("kind", "trap")],
            1.0,
        ),
        (
            "wsfn_guest_faults_total",
            &[("function", "faulty"), ("kind", "deadline")],
            0.0,
        ),
        (
            "wsfn_event_duration_seconds_count",
            &[("function", "faulty"), ("event", "message")],
            1.0,
        ),
        ("wsfn_slow_consumer_closes_total", &lifecycle, 0.0),
        ("wsfn_outbound_dropped_frames_total", &lifecycle, 0.0),
        ("wsfn_deploys_total", &lifecycle, 0.0),
    ];
    for (name, labels, expected) in expectations {
        assert_eq!(
            moved(&before, &after, name, labels),
            *expected,
            "{name} {labels:?}"
        );
    }
    assert_eq!(after.value("wsfn_connections_open", &lifecycle), 0.0);
    // Every observation falls in the last bucket.
    assert_eq!(
        after.value(
            "wsfn_event_duration_seconds_bucket",
            &[
                ("function", "lifecycle"),
                ("event", "message"),
                ("le", "+Inf")
            ],
        ),
        after.value(
            "wsfn_event_duration_seconds_count",
            &[("function", "lifecycle"), ("event", "message")],
        )
    );

    admin.deploy("lifecycle", function_bytes("echo")).await;
    admin.rollback("lifecycle", "").await.expect_status(200);
    let changed = scrape(&admin).await;
    assert_eq!(
        moved(&after, &changed, "wsfn_deploys_total", &lifecycle),
        1.0
    );
    assert_eq!(
        moved(&after, &changed, "wsfn_rollbacks_total", &lifecycle),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_admin_token_unless_made_public() {
    let host = Host::builder().function("echo").start().await;
    let admin = host.admin();
    let message = admin
        .without_token()
        .get("/metrics")
        .await
        .expect_error(401);
    assert!(message.contains("Bearer"), "{message}");
    admin
        .with_token("wrong")
        .get("/metrics")
        .await
        .expect_error(401);

    let public = Host::builder()
        .function("echo")
        .flag("--public-metrics")
        .start()
        .await;
    let anonymous = public.admin().without_token();
    let scraped = anonymous.get("/metrics").await.expect_status(200).text();
    assert!(
        Exposition::parse(&scraped).has("wsfn_connections_open"),
        "{scraped}"
    );
    // Only the metrics are public.
    anonymous.get("/v1/functions").await.expect_error(401);
}

/// Pushes 64 KiB messages from the admin API at a client that reads nothing, until a push is
/// refused or `limit` pushes were taken; returns the pushes taken and the refusal's status.
async fn push_until_refused(host: &Host, id: &str, limit: usize) -> (usize, Option<u16>) {
    let admin = host.admin();
    let message = vec![0xa5_u8; 64 * 1024];
    for taken in 0..limit {
        let answer = admin
            .post(
                &format!("/v1/connections/{id}/send"),
                OCTET_STREAM,
                message.clone(),
            )
            .await;
        if answer.status != 200 {
            return (taken, Some(answer.status));
        }
    }
    (limit, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_consumers_are_counted_as_the_function_stats_count_them() {
    let lifecycle = [("function", "lifecycle")];
    for policy in ["close", "drop-oldest"] {
        let host = Host::builder()
            .function("lifecycle")
            .option("--outbound-queue", "64KiB")
            .option("--slow-consumer", policy)
            .start()
            .await;
        let mut client = host
            .silent_connect_with_receive_buffer("lifecycle", 16 * 1024)
            .await;
        client.send_text("id").await;
        let id = client.next_text().await;

        // Far more than the queue and every socket buffer on the way can hold.
        let (taken, refused) = push_until_refused(&host, &id, 400).await;
        let scraped = scrape(&host.admin()).await;
        let stats = host.admin().function("lifecycle").await["stats"].clone();
        let closes = scraped.value("wsfn_slow_consumer_closes_total", &lifecycle);
        let dropped = scraped.value("wsfn_outbound_dropped_frames_total", &lifecycle);
        assert_eq!(
            closes,
            stats["slow_consumer_closes"].as_f64().unwrap_or(-1.0)
        );
        assert_eq!(dropped, stats["dropped_frames"].as_f64().unwrap_or(-1.0));
        // Every push taken was queued, and so was the answer to `id`.
        assert_eq!(
            scraped.value("wsfn_messages_out_total", &lifecycle),
            taken as f64 + 1.0,
            "{policy}"
        );
        if policy == "close" {
            assert_eq!(refused, Some(429), "{policy}: pushes taken {taken}");
            assert_eq!(closes, 1.0, "{policy}");
            assert_eq!(dropped, 0.0, "{policy}");
        } else {
            assert_eq!(refused, None, "{policy}: drop-oldest takes every push");
            assert!(dropped > 0.0, "{policy}");
            assert_eq!(closes, 0.0, "{policy}");
        }
    }
}
