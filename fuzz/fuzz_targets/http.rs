//! Fuzz target `http`: what the agent and the CLI read from HTTP servers, fed whatever a
//! hostile or broken server could send: the agent's HTTP client on hyper, as webhooks
//! and checks use it (`http_client::read_answer`, async, over an in-memory stream), and
//! the CLI's reader of the event stream (`api::client::read_events`, Server-Sent Events).
//!
//! Invariants checked:
//! - no panic, whatever the bytes (status lines, header framing, `Content-Length`,
//!   chunk sizes in hex with extensions, cut-off chunks, no blank line at all);
//! - the webhook reader keeps at most `body_limit` bytes of body and reports a status
//!   code in 100..1000, and with a limit of zero reads no body;
//! - the event reader hands over only events whose data came from the input (never more
//!   data bytes than it was given).

#![no_main]

use std::ops::ControlFlow;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use muster::api::client::read_events;
use muster::http_client::read_answer;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Body bytes the webhook reader may keep (a check keeps 4 KiB; bounded here so the
    /// limit matters).
    body_limit: u16,
    /// Start from a plausible head instead of raw bytes, so the fuzzer reaches bodies.
    head: Option<HeadArg>,
    bytes: &'a [u8],
}

#[derive(Arbitrary, Debug)]
struct HeadArg {
    status: u16,
    length: Option<u32>,
    chunked: bool,
}

fn answer_bytes(input: &Input<'_>) -> Vec<u8> {
    let Some(head) = &input.head else {
        return input.bytes.to_vec();
    };
    let mut text = format!("HTTP/1.1 {} X\r\n", head.status);
    if let Some(len) = head.length {
        text.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if head.chunked {
        text.push_str("Transfer-Encoding: chunked\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(input.bytes);
    bytes
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
}

fuzz_target!(|input: Input<'_>| {
    let bytes = answer_bytes(&input);
    let limit = usize::from(input.body_limit);
    let webhook = RUNTIME.with(|rt| {
        rt.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            read_answer(std::io::Cursor::new(bytes.clone()), limit, deadline).await
        })
    });
    if let Ok((status, body)) = webhook {
        assert!((100..1000).contains(&status), "status {status}");
        assert!(body.len() <= limit, "{} body bytes over the limit {limit}", body.len());
    }
    let mut data = 0usize;
    let _ = read_events(bytes.as_slice(), |message| {
        data += message.data.len();
        ControlFlow::Continue(())
    });
    assert!(data <= bytes.len(), "{data} data bytes from {} input bytes", bytes.len());
});
