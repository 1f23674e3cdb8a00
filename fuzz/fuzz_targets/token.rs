//! Any player token: checking it never panics, and nothing unsigned passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podium_actors::domain::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::token(data));
