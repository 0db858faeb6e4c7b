//! The load check: a bounded run like `ab -n N -c C` on keep-alive connections.

use std::time::Instant;

use super::super::traffic::fire;
use super::super::verdict;
use super::super::{Check, Verifier};

impl Verifier<'_> {
    /// Check 8: A bounded load run, like `ab -n N -c C`, on keep-alive connections.
    pub(in crate::verify) async fn load(&self) -> Check {
        let n = self.options.requests as usize;
        let c = self.options.concurrency as usize;
        let url = self.url("/api/health");
        let t = Instant::now();
        let samples = fire(n, c, |_| self.clients.pooled.get(&url)).await;
        let secs = t.elapsed().as_secs_f64();
        let errors: Vec<String> = samples
            .iter()
            .filter(|s| s.status != Some(200))
            .map(|s| s.error_text())
            .collect();
        let ms: Vec<f64> = samples
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1000.0)
            .collect();
        verdict::load_check(n, c, secs, ms, &errors)
    }
}
