//! One command's view of a share: the published revision (HEAD and its verified manifest),
//! the directory's state and scan, and the three-way comparison of the three.

use super::diff::{Diff, three_way};
use super::layout::{Head, Kind, Manifest};
use super::local::{Dir, Entry, Pending, State, Synced};
use super::remote::{Remote, Versioned};
use crate::toolkit::{OutputFormat, ToolError};
use std::collections::BTreeMap;

pub struct Session {
    pub remote: Remote,
    pub dir: Dir,
    pub share: String,
    pub format: OutputFormat,
}

/// The published revision: `head` is `None` for a share never pushed to.
#[derive(Clone, Debug)]
pub struct Published {
    pub head: Option<Versioned<Head>>,
    pub manifest: Manifest,
    /// The store's revision (index) `HEAD` was read at.
    pub index: u64,
}

impl Published {
    pub fn rev(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.value.rev)
    }

    pub fn root(&self) -> Option<&str> {
        self.head.as_ref().map(|h| h.value.root.as_str())
    }

    /// HEAD's version (0 when absent): what a publish compares against and a watch waits
    /// after.
    pub fn version(&self) -> u64 {
        self.head.as_ref().map_or(0, |h| h.version)
    }

    pub fn tree(&self) -> BTreeMap<String, Entry> {
        manifest_tree(&self.manifest)
    }
}

pub fn manifest_tree(manifest: &Manifest) -> BTreeMap<String, Entry> {
    let files = manifest.files.iter().map(|(path, f)| {
        let entry = Entry::File {
            sha256: f.sha256.clone(),
            mode: f.mode.clone(),
            size: f.size,
        };
        (path.clone(), entry)
    });
    let links = manifest.links.iter().map(|(path, target)| {
        (
            path.clone(),
            Entry::Link {
                target: target.clone(),
            },
        )
    });
    files.chain(links).collect()
}

pub struct View {
    pub state: State,
    pub local: BTreeMap<String, Synced>,
    pub published: Published,
    pub diff: Diff,
}

impl Session {
    pub async fn published(&self) -> Result<Published, ToolError> {
        let (head, index) = self.remote.head_at().await?;
        let Some(head) = head else {
            return Ok(Published {
                head: None,
                manifest: Manifest::new(),
                index,
            });
        };
        let manifest = self.manifest(head.value.root_hex()).await?;
        Ok(Published {
            head: Some(head),
            manifest,
            index,
        })
    }

    /// A manifest, checked against the hash that names it.
    pub async fn manifest(&self, hex: &str) -> Result<Manifest, ToolError> {
        let key = self.remote.keys.key(Kind::Manifests, hex);
        let read = self
            .remote
            .get(&key)
            .await?
            .ok_or_else(|| ToolError::data(format!("manifest {hex} is missing")))?;
        let text = String::from_utf8(read.value)
            .map_err(|_| ToolError::data(format!("manifest {hex} is not text")))?;
        Manifest::parse(&text, hex)
    }

    /// State, scan and published revision, compared. The state is loaded before the
    /// store is read, so a missing share is reported as such, not as a state mismatch.
    pub async fn view(&self, pattern: Option<&str>) -> Result<View, ToolError> {
        let mut state = self.dir.load_state(&self.share)?;
        let published = self.published().await?;
        if let Some(pending) = state.pending.take()
            && self.was_published(&published, &pending).await?
        {
            state.adopt(pending);
        }
        let local = self.dir.scan(&state)?;
        let local_tree: BTreeMap<String, Entry> = local
            .iter()
            .map(|(path, synced)| (path.clone(), synced.entry.clone()))
            .collect();
        let diff = three_way(&local_tree, &state.base(), &published.tree()).only(pattern);
        Ok(View {
            state,
            local,
            published,
            diff,
        })
    }

    /// Whether a push recorded as pending got its revision published.
    async fn was_published(
        &self,
        published: &Published,
        pending: &Pending,
    ) -> Result<bool, ToolError> {
        if published.root() == Some(pending.root.as_str()) {
            return Ok(true);
        }
        let key = self
            .remote
            .keys
            .key(Kind::History, &pending.rev.to_string());
        let Some(read) = self.remote.get(&key).await? else {
            return Ok(false);
        };
        let text = String::from_utf8_lossy(&read.value);
        Ok(Head::parse(&text).is_ok_and(|h| h.root == pending.root))
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }
}
