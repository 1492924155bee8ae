//! clawft's hand-written JSON against serde_json as the oracle: the same
//! texts are accepted with the same values, and what clawft writes (compact
//! and pretty) reads back as the same value; the lenient parse for stream
//! pieces agrees with the strict one wherever that one succeeds.
#![no_main]

use clawft::json::{self, Json};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Whether our tree says what serde_json's says.
fn same(ours: &Json, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Json::Null, Value::Null) => true,
        (Json::Bool(a), Value::Bool(b)) => a == b,
        (Json::String(a), Value::String(b)) => a == b,
        // Compare numbers the way serde_json reads our text.
        (Json::Number(text), Value::Number(_)) => {
            serde_json::from_str::<Value>(text.as_str()).ok().as_ref() == Some(theirs)
        }
        (Json::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        // serde_json keeps the last of a repeated key, as Json::get does.
        (Json::Object(members), Value::Object(map)) => {
            map.iter()
                .all(|(k, v)| ours.get(k).is_some_and(|o| same(o, v)))
                && members.iter().all(|m| map.contains_key(&m.key))
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = json::parse(data);
    // The stream reader's lenient parse accepts all the strict one does, with
    // the same value; it may accept more (unpaired surrogates), never panic.
    let piece = json::parse_piece(data);
    if let Ok(value) = &ours {
        assert_eq!(piece.as_ref().ok(), Some(value), "parse_piece differs: {data:?}");
    }
    let theirs = serde_json::from_slice::<Value>(data);
    if let Ok(value) = &ours {
        for text in [value.to_text(), value.to_pretty_text()] {
            let again = json::parse(text.as_bytes()).expect("written JSON reads back");
            assert_eq!(&again, value, "{text}");
            match serde_json::from_str::<Value>(&text) {
                Ok(checked) => assert!(same(value, &checked), "{text}"),
                // A number past f64's range: we keep its text, serde_json refuses it.
                Err(e) => assert!(e.to_string().contains("number out of range"), "{e}: {text}"),
            }
        }
    }
    match (&ours, &theirs) {
        (Ok(o), Ok(t)) => assert!(same(o, t), "different values for {data:?}"),
        (Err(_), Err(_)) => {}
        // serde_json refuses numbers too large for an f64; we keep them as text.
        (Ok(_), Err(e)) if e.to_string().contains("number out of range") => {}
        (Ok(_), Err(e)) => panic!("we accept what serde_json refuses ({e}): {data:?}"),
        (Err(e), Ok(_)) => panic!("we refuse what serde_json accepts ({e}): {data:?}"),
    }
});
