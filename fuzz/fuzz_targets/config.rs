//! `config.json` parsing and provider resolution: never a panic, whatever
//! the text.
#![no_main]

use clawft::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::parse(text) else {
        return;
    };
    for model in [None, Some("openai/m"), Some("anthropic/m"), Some("local/m"), Some("x")] {
        if let Ok(settings) = config.settings(model, |_| Some("sk-fuzz".into())) {
            let _ = settings.provider.require_key();
            let _ = settings.qualified_model();
        }
    }
});
