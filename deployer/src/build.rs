//! `deployer build`: the app image from this workspace, tagged with a content
//! hash so a code change is a visible image change.

use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::target::docker::engine::Engine;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no Cargo workspace with an app/ crate at {}", .0.display())]
    NoWorkspace(PathBuf),
    #[error("`cargo build --release -p app` failed")]
    Cargo(#[source] Option<std::io::Error>),
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("packing the build context")]
    Context(#[source] std::io::Error),
    #[error("the image build failed: {message}")]
    Build { message: String },
    #[error("the image build failed")]
    Engine(#[source] bollard::errors::Error),
    #[error("pushing the image to {target} failed: {message}")]
    Push { target: String, message: String },
    #[error("tagging the image as {tag}")]
    Tag {
        tag: String,
        #[source]
        source: bollard::errors::Error,
    },
}

pub struct Built {
    /// `repo:<content hash>`.
    pub hash_tag: String,
    /// The ref cluster.toml names, pointing at the same image.
    pub tag: String,
    pub id: String,
    pub reused: bool,
}

/// Compiles the app in release mode (cargo's output goes to stderr).
pub fn compile(workspace: &Path) -> Result<PathBuf, BuildError> {
    if !workspace.join("app/Cargo.toml").exists() {
        return Err(BuildError::NoWorkspace(workspace.to_path_buf()));
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "app"])
        .current_dir(workspace)
        .status()
        .map_err(|e| BuildError::Cargo(Some(e)))?;
    if !status.success() {
        return Err(BuildError::Cargo(None));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release/app"))
}

/// Builds (or reuses) the image for `binary` and tags it `tag` too.
pub async fn image(
    engine: &Engine,
    workspace: &Path,
    binary: &Path,
    tag: &str,
) -> Result<Built, BuildError> {
    let read =
        |path: PathBuf| std::fs::read(&path).map_err(|source| BuildError::Read { path, source });
    let dockerfile = read(workspace.join("app/Dockerfile"))?;
    let bin = read(binary.to_path_buf())?;
    let mut h = Sha256::new();
    h.update(&dockerfile);
    h.update(&bin);
    let hash = hex::encode(&h.finalize()[..6]);
    let repo = tag
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or(tag, |(r, _)| r);
    let hash_tag = format!("{repo}:{hash}");

    let existing = engine.image_id(&hash_tag).await.ok().flatten();
    let reused = existing.is_some();
    if !reused {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, mode) in [("Dockerfile", &dockerfile, 0o644), ("app", &bin, 0o755)] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            b.append_data(&mut header, name, &data[..])
                .map_err(BuildError::Context)?;
        }
        let context = b.into_inner().map_err(BuildError::Context)?;
        let opts = bollard::query_parameters::BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(&hash_tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            engine
                .docker
                .build_image(opts, None, Some(bollard::body_full(context.into())));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(e) = info.error_detail.and_then(|d| d.message) {
                        return Err(BuildError::Build { message: e });
                    }
                }
                Err(e) => return Err(BuildError::Engine(e)),
            }
        }
    }
    let (to_repo, to_tag) = match tag.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((r, t)) => (r, t),
        None => (tag, "latest"),
    };
    let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(to_repo)
        .tag(to_tag)
        .build();
    engine
        .docker
        .tag_image(&hash_tag, Some(opts))
        .await
        .map_err(|source| BuildError::Tag {
            tag: tag.to_string(),
            source,
        })?;
    let id = engine
        .image_id(&hash_tag)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    Ok(Built {
        hash_tag,
        tag: tag.to_string(),
        id,
        reused,
    })
}

/// Tags the built image `tag` as `<registry>/<tag>` and pushes it there (a
/// swarm's hosts pull it from that registry). Returns the pushed reference.
pub async fn push(engine: &Engine, tag: &str, registry: &str) -> Result<String, BuildError> {
    let target = crate::deploy::swarm_ref(registry, tag);
    let (repo, t) = match target.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((r, t)) => (r.to_string(), t.to_string()),
        None => (target.clone(), "latest".to_string()),
    };
    let opts = bollard::query_parameters::TagImageOptionsBuilder::default()
        .repo(&repo)
        .tag(&t)
        .build();
    engine
        .docker
        .tag_image(tag, Some(opts))
        .await
        .map_err(|source| BuildError::Tag {
            tag: target.clone(),
            source,
        })?;
    let opts = bollard::query_parameters::PushImageOptionsBuilder::default()
        .tag(&t)
        .build();
    let mut stream = engine.docker.push_image(&repo, Some(opts), None);
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(BuildError::Push { target, message: e });
                }
            }
            Err(e) => {
                return Err(BuildError::Push {
                    target,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(target)
}
