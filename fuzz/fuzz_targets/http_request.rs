#![no_main]

use libfuzzer_sys::fuzz_target;
use sonde_protocols::MessageKind;

fuzz_target!(|data: &[u8]| sonde_fuzz::run_http(MessageKind::Request, data));
