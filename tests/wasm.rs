//! The wasm builds end to end in the real wasmtime CLI, against a real HTTP
//! server on 127.0.0.1: the wasip2 component (HTTP through `wasi:http`) and
//! the wasip1 module (files only). Same scenarios as `tests/native.rs`.
//!
//! These tests need `target/wasm32-wasip{1,2}/release/weft.wasm` and
//! wasmtime; when either is missing they fail and say how to get it
//! (`scripts/test` builds everything first).

use clawft_harness::scenarios::{self as s, Outcome};
use clawft_harness::{Server, Weft};

fn check<T>(outcome: Outcome<T>) {
    if let Err(why) = outcome {
        panic!("{why}");
    }
}

#[test]
fn wasip2_openai_conversation_streaming() {
    check(s::conversation(&Weft::wasip2(), &Server::start(), true));
}

#[test]
fn wasip2_openai_conversation_complete() {
    check(s::conversation(&Weft::wasip2(), &Server::start(), false));
}

#[test]
fn wasip2_anthropic_streaming() {
    check(s::anthropic_turn(&Weft::wasip2(), &Server::start(), true));
}

#[test]
fn wasip2_anthropic_complete() {
    check(s::anthropic_turn(&Weft::wasip2(), &Server::start(), false));
}

#[test]
fn wasip2_request_body_over_64_kib() {
    check(s::large_request(&Weft::wasip2(), &Server::start()));
}

#[test]
fn wasip2_error_statuses() {
    check(s::error_statuses(&Weft::wasip2(), &Server::start()));
}

#[test]
fn wasip2_unreachable_server() {
    check(s::unreachable_server(&Weft::wasip2()));
}

#[test]
fn wasip2_timeouts() {
    check(s::timeouts(&Weft::wasip2(), &Server::start()));
}

#[test]
fn wasip2_interrupted_stream() {
    check(s::interrupted_stream(&Weft::wasip2(), &Server::start()));
}

#[test]
fn wasip2_key_stays_hidden() {
    check(s::key_stays_hidden(&Weft::wasip2(), &Server::start()));
}

#[test]
fn wasip2_status_report() {
    check(s::status_report(&Weft::wasip2()));
}

#[test]
fn wasip2_session_commands() {
    check(s::session_commands(&Weft::wasip2(), &Server::start()));
}

#[test]
fn wasip2_usage_errors() {
    check(s::usage_errors(&Weft::wasip2()));
}

#[test]
fn wasip1_files_work_and_http_is_unavailable() {
    check(s::without_http(&Weft::wasip1(), &Server::start()));
}

#[test]
fn wasip1_status_report() {
    check(s::status_report(&Weft::wasip1()));
}

#[test]
fn wasip1_session_commands_and_usage_errors() {
    let weft = Weft::wasip1();
    check(s::usage_errors(&weft));
    // Sessions are plain files: seed one and read it back through the module.
    let dir = weft.home().join("sessions");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("seeded.jsonl"),
        "{\"_type\":\"metadata\"}\n{\"role\":\"user\",\"content\":\"hi\",\"timestamp\":\"2026-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    let list = weft.run(&["sessions", "list"]);
    assert!(list.code == 0 && list.stdout.contains("seeded"), "{list}");
    let show = weft.run(&["sessions", "show", "seeded"]);
    assert!(show.code == 0 && show.stdout.contains("hi"), "{show}");
    let rm = weft.run(&["sessions", "rm", "seeded"]);
    assert!(rm.code == 0 && !dir.join("seeded.jsonl").exists(), "{rm}");
}

#[test]
fn wasip2_untrusted_tls_is_a_tls_error() {
    check(s::tls_trust(&Weft::wasip2(), &Server::start_tls()));
}

mod faults {
    use super::check;
    use clawft_harness::faults as f;
    use clawft_harness::{Server, Weft};

    #[test]
    fn wasip2_retries_until_success() {
        check(f::retries_until_success(&Weft::wasip2(), &Server::start()));
    }

    #[test]
    fn wasip2_retries_give_up() {
        check(f::retries_give_up(&Weft::wasip2(), &Server::start()));
    }

    #[test]
    fn wasip2_client_errors_are_not_retried() {
        check(f::client_errors_are_not_retried(
            &Weft::wasip2(),
            &Server::start(),
        ));
    }

    #[test]
    fn wasip2_retry_after_is_obeyed() {
        check(f::retry_after_is_obeyed(&Weft::wasip2(), &Server::start()));
    }

    #[test]
    fn wasip2_dropped_connections_are_retried() {
        check(f::dropped_connections_are_retried(
            &Weft::wasip2(),
            &Server::start(),
        ));
    }

    #[test]
    fn wasip2_shown_text_is_never_sent_twice() {
        check(f::shown_text_is_never_sent_twice(
            &Weft::wasip2(),
            &Server::start(),
        ));
    }

    #[test]
    fn wasip2_broken_replies() {
        check(f::broken_replies(&Weft::wasip2(), &Server::start()));
    }

    #[test]
    fn wasip2_broken_characters_are_repaired() {
        check(f::broken_characters_are_repaired(
            &Weft::wasip2(),
            &Server::start(),
        ));
    }

    #[test]
    fn wasip2_endless_stream_is_bounded() {
        check(f::endless_stream_is_bounded(
            &Weft::wasip2(),
            &Server::start(),
        ));
    }

    #[test]
    fn wasip2_key_appears_nowhere() {
        check(f::key_appears_nowhere(&Weft::wasip2(), &Server::start()));
    }

    #[test]
    fn wasip2_concurrent_instances_share_one_session() {
        check(f::concurrent_writers(Weft::wasip2, &Server::start(), 4, 10));
    }
}

#[test]
fn wasip2_interactive_turns_on_a_terminal() {
    check(s::interactive_turns(&Weft::wasip2(), &Server::start()));
}

/// Import names are stored as plain text in a wasm binary.
fn mentions(wasm: &std::path::Path, name: &str) -> bool {
    let bytes = std::fs::read(wasm).expect("read the wasm file");
    bytes.windows(name.len()).any(|w| w == name.as_bytes())
}

#[test]
fn wasip1_imports_nothing_from_wasi_http_and_the_component_does() {
    let p1 = clawft_harness::weft::artifact("CLAWFT_WASIP1", "wasm32-wasip1");
    let p2 = clawft_harness::weft::artifact("CLAWFT_WASIP2", "wasm32-wasip2");
    // A host without the component model (WAMR) must be able to load it.
    assert!(
        !mentions(&p1, "wasi:http"),
        "the wasip1 module imports wasi:http"
    );
    assert!(mentions(&p1, "wasi_snapshot_preview1"));
    assert!(mentions(&p2, "wasi:http/outgoing-handler"));
}

/// The tool loop in the component: the same scenarios as natively, the
/// workspace a preopen of its own.
mod tools {
    use super::check;
    use clawft_harness::tools::{self as t, Protocol};
    use clawft_harness::{Server, Weft};

    fn each(scenario: fn(&Weft, &Server, Protocol, bool) -> t::Outcome) {
        let server = Server::start();
        for protocol in Protocol::BOTH {
            for stream in [true, false] {
                check(scenario(&Weft::wasip2(), &server, protocol, stream));
            }
        }
    }

    #[test]
    fn wasip2_read_then_write() {
        each(t::read_then_write);
    }

    #[test]
    fn wasip2_parallel_calls() {
        each(t::parallel_calls);
    }

    #[test]
    fn wasip2_bad_calls() {
        each(t::bad_calls);
    }

    #[test]
    fn wasip2_limits() {
        each(t::limits);
    }

    #[test]
    fn wasip2_escapes_are_refused_by_the_resolver_and_the_host() {
        for protocol in Protocol::BOTH {
            check(t::escapes_are_refused(
                &Weft::wasip2(),
                &Server::start(),
                protocol,
            ));
        }
    }

    #[test]
    fn wasip2_torn_session() {
        for protocol in Protocol::BOTH {
            check(t::torn_session(&Weft::wasip2(), &Server::start(), protocol));
        }
    }

    #[test]
    fn wasip2_no_tools() {
        check(t::no_tools(
            &Weft::wasip2(),
            &Server::start(),
            Protocol::Anthropic,
        ));
    }

    #[test]
    fn wasip2_web_fetch_through_wasi_http() {
        check(t::web_fetch(
            &Weft::wasip2(),
            &Server::start(),
            Protocol::OpenAi,
        ));
    }
}

#[test]
fn wasip2_terminal_escapes_are_neutralised_on_a_terminal_only() {
    check(s::terminal_escapes(&Weft::wasip2(), &Server::start()));
}

#[test]
fn wasip2_nanobot_config_files_work_unchanged() {
    check(s::nanobot_config(&Weft::wasip2(), &Server::start()));
}
