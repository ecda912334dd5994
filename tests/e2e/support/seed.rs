//! The seed of a randomised test: taken from `WSFN_TEST_SEED` when set, so a failure can be
//! replayed, otherwise drawn afresh; printed when the test fails.

/// The variable that replays a failed run.
const VARIABLE: &str = "WSFN_TEST_SEED";

pub struct Seed(u64);

impl Seed {
    pub fn from_env_or_random() -> Self {
        let seed = match std::env::var(VARIABLE) {
            Ok(text) => text
                .trim()
                .parse()
                .unwrap_or_else(|error| panic!("{VARIABLE}={text:?} is not a u64: {error}")),
            Err(_) => getrandom::u64().expect("the system's random source"),
        };
        Self(seed)
    }

    pub fn value(&self) -> u64 {
        self.0
    }

    /// A generator for one use of the seed; `stream` keeps the uses apart.
    pub fn random(&self, stream: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(self.0 ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl Drop for Seed {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- replay this run with {VARIABLE}={} -----", self.0);
        }
    }
}
