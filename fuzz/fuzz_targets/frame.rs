//! Any text frame: parsing never panics, and a refusal still encodes as an error frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podium_actors::domain::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::frame(data));
