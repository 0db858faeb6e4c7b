//! The [redis] section: whether the cluster runs Redis, and its image.

use super::Checker;
use crate::config::raw::RawRedis;
use crate::config::spec::RedisSpec;

/// `None` without a [redis] section or with `enabled = false`; the image is
/// checked either way.
pub(super) fn convert(c: &mut Checker, r: Option<&RawRedis>) -> Option<RedisSpec> {
    let r = r?;
    let image = c.image(&r.image, "image", "redis:7.0-bookworm");
    let enabled = r.enabled.as_ref().map(|e| *e.get_ref()).unwrap_or(true);
    enabled.then_some(RedisSpec { image })
}
