//! Shared by the streamed-reply targets: a reply body that arrives in pieces
//! whose sizes the fuzzer chooses too.

use clawft::config::{Config, Settings};
use clawft::http::{HttpError, ReadBody, Response};

/// The first input byte picks the piece size; the rest is the body.
pub struct Pieces {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl ReadBody for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, HttpError> {
        let n = self.step.min(buf.len()).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

pub fn settings(model: &str) -> Settings {
    Config::parse(r#"{"agents":{"defaults":{"maxTokens":64}}}"#)
        .expect("fixed config")
        .settings(Some(model), |_| Some("sk-fuzz".into()))
        .expect("fixed settings")
}

/// Runs the whole reply reader over the input, streamed; it may fail but
/// must not panic, and on success it returns exactly what it showed.
pub fn read_streamed(model: &str, data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let settings = settings(model);
    let response = Response {
        status: 200,
        headers: vec![("content-type".into(), "text/event-stream".into())],
        body: Box::new(Pieces {
            data: body.to_vec(),
            at: 0,
            step: usize::from(first).max(1),
        }),
    };
    let mut shown = String::new();
    let result = clawft::provider::read_reply(&settings, response, true, &mut |text| {
        shown.push_str(text);
        Ok(())
    });
    if let Ok(reply) = result {
        assert_eq!(reply.text, shown);
    }
}
