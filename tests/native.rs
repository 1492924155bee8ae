//! The native `weft` binary end to end, against a real HTTP server on
//! 127.0.0.1. The scenarios are shared with the wasm tests (`tests/wasm.rs`).

use clawft_harness::scenarios::{self as s, Outcome};
use clawft_harness::{Server, Weft};

fn weft() -> Weft {
    Weft::native(env!("CARGO_BIN_EXE_weft"))
}

fn check<T>(outcome: Outcome<T>) {
    if let Err(why) = outcome {
        panic!("{why}");
    }
}

#[test]
fn openai_conversation_streaming() {
    check(s::conversation(&weft(), &Server::start(), true));
}

#[test]
fn openai_conversation_complete() {
    check(s::conversation(&weft(), &Server::start(), false));
}

#[test]
fn anthropic_streaming() {
    check(s::anthropic_turn(&weft(), &Server::start(), true));
}

#[test]
fn anthropic_complete() {
    check(s::anthropic_turn(&weft(), &Server::start(), false));
}

#[test]
fn request_body_over_64_kib() {
    check(s::large_request(&weft(), &Server::start()));
}

#[test]
fn error_statuses() {
    check(s::error_statuses(&weft(), &Server::start()));
}

#[test]
fn unreachable_server() {
    check(s::unreachable_server(&weft()));
}

#[test]
fn timeouts() {
    check(s::timeouts(&weft(), &Server::start()));
}

#[test]
fn interrupted_stream() {
    check(s::interrupted_stream(&weft(), &Server::start()));
}

#[test]
fn plain_json_when_streaming() {
    check(s::plain_json_when_streaming(&weft(), &Server::start()));
}

#[test]
fn key_stays_hidden() {
    check(s::key_stays_hidden(&weft(), &Server::start()));
}

#[test]
fn status_report() {
    check(s::status_report(&weft()));
}

#[test]
fn session_commands() {
    check(s::session_commands(&weft(), &Server::start()));
}

#[test]
fn usage_errors() {
    check(s::usage_errors(&weft()));
}

#[test]
fn tls_needs_a_trusted_ca_and_honours_ssl_cert_file() {
    check(s::tls_trust(&weft(), &Server::start_tls()));
}

#[test]
fn https_proxy_is_honoured() {
    check(s::https_proxy(
        &weft(),
        &Server::start_tls(),
        &clawft_harness::Proxy::start(),
    ));
}

mod faults {
    use super::{check, weft};
    use clawft_harness::faults as f;
    use clawft_harness::Server;

    #[test]
    fn retries_until_success() {
        check(f::retries_until_success(&weft(), &Server::start()));
    }

    #[test]
    fn retries_give_up() {
        check(f::retries_give_up(&weft(), &Server::start()));
    }

    #[test]
    fn client_errors_are_not_retried() {
        check(f::client_errors_are_not_retried(&weft(), &Server::start()));
    }

    #[test]
    fn retry_after_is_obeyed() {
        check(f::retry_after_is_obeyed(&weft(), &Server::start()));
    }

    #[test]
    fn dropped_connections_are_retried() {
        check(f::dropped_connections_are_retried(
            &weft(),
            &Server::start(),
        ));
    }

    #[test]
    fn shown_text_is_never_sent_twice() {
        check(f::shown_text_is_never_sent_twice(&weft(), &Server::start()));
    }

    #[test]
    fn broken_replies() {
        check(f::broken_replies(&weft(), &Server::start()));
    }

    #[test]
    fn broken_characters_are_repaired() {
        check(f::broken_characters_are_repaired(&weft(), &Server::start()));
    }

    #[test]
    fn endless_stream_is_bounded() {
        check(f::endless_stream_is_bounded(&weft(), &Server::start()));
    }

    #[test]
    fn key_appears_nowhere() {
        check(f::key_appears_nowhere(&weft(), &Server::start()));
    }

    #[test]
    fn eight_processes_append_25_turns_each_to_one_session() {
        check(f::concurrent_writers(weft, &Server::start(), 8, 25));
    }
}

#[test]
fn interactive_turns_on_a_terminal() {
    check(s::interactive_turns(&weft(), &Server::start()));
}

/// The tool loop: every scenario, both protocols, streamed and whole.
mod tools {
    use super::{check, weft};
    use clawft_harness::tools::{self as t, Protocol};
    use clawft_harness::Server;

    fn each(scenario: fn(&clawft_harness::Weft, &Server, Protocol, bool) -> t::Outcome) {
        let server = Server::start();
        for protocol in Protocol::BOTH {
            for stream in [true, false] {
                check(scenario(&weft(), &server, protocol, stream));
            }
        }
    }

    #[test]
    fn read_then_write() {
        each(t::read_then_write);
    }

    #[test]
    fn parallel_calls() {
        each(t::parallel_calls);
    }

    #[test]
    fn bad_calls() {
        each(t::bad_calls);
    }

    #[test]
    fn limits() {
        each(t::limits);
    }

    #[test]
    fn escapes_are_refused() {
        for protocol in Protocol::BOTH {
            check(t::escapes_are_refused(&weft(), &Server::start(), protocol));
        }
    }

    #[test]
    fn torn_session() {
        for protocol in Protocol::BOTH {
            check(t::torn_session(&weft(), &Server::start(), protocol));
        }
    }

    #[test]
    fn no_tools() {
        for protocol in Protocol::BOTH {
            check(t::no_tools(&weft(), &Server::start(), protocol));
        }
    }

    #[test]
    fn web_fetch() {
        check(t::web_fetch(&weft(), &Server::start(), Protocol::OpenAi));
    }

    #[test]
    fn exec() {
        check(t::exec(&weft(), &Server::start()));
    }
}

#[test]
fn terminal_escapes_are_neutralised_on_a_terminal_only() {
    check(s::terminal_escapes(&weft(), &Server::start()));
}

#[test]
fn nanobot_config_files_work_unchanged() {
    check(s::nanobot_config(&weft(), &Server::start()));
}
