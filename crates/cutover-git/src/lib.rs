//! cutover history: reading git with gix (tags, the last release, commit walks), writing through the system git.
//!
//! Reading is done in-process with gix: it is fast (no process per query), needs no libgit2, and
//! gives typed errors. Writing ([`write`]) shells out to the system `git` with argv arrays, because a
//! tag or commit made by cutover must behave exactly like one the user makes: their hooks run, their
//! signing configuration (`tag.gpgSign`, `commit.gpgSign`, SSH signing) applies, and `git push` uses
//! their credential helpers.
//!
//! Walks ([`Repo::commits`]) follow *all* parents, like `git log A..B`: commits that arrived through
//! a merge belong to the release too, and that is where their Conventional Commit messages are.
//! Merge commits themselves are skipped by default (their messages are `Merge pull request …`),
//! configurable with [`MergePolicy`]; [`WalkOptions::first_parent`] restricts a walk to the main line.
//! The order is newest first by committer time, ties broken by the walk, so output is deterministic.

pub mod testrepo;
pub mod write;

use cutover_core::tag::{ReleaseTag, TagError, TagFormat};
use gix::bstr::ByteSlice;
use gix::revision::walk::Sorting;
use gix::traverse::commit::simple::CommitTimeOrder;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use gix::ObjectId;

/// What went wrong reading a repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The directory does not exist.
    #[error("{path}: no such directory")]
    NoSuchDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Not inside a git work tree or repository.
    #[error(
        "{path}: not a git repository (or any parent up to the file system root); hint: run `git init`, or pass --project DIR"
    )]
    NotARepository {
        /// The path given.
        path: PathBuf,
        /// What gix said.
        detail: String,
    },
    /// HEAD points to a branch without commits.
    #[error(
        "{path}: HEAD has no commits yet (unborn branch `{branch}`); hint: make a first commit"
    )]
    UnbornHead {
        /// The repository.
        path: PathBuf,
        /// The branch HEAD names.
        branch: String,
    },
    /// The history is cut off before the last release (a shallow clone).
    #[error(
        "{path}: this is a shallow clone and its history stops at {boundary} before reaching {wanted}; hint: run `git fetch --unshallow --tags` (in CI: fetch-depth: 0)"
    )]
    Shallow {
        /// The repository.
        path: PathBuf,
        /// The shallow boundary commit reached.
        boundary: String,
        /// What the walk needed to reach (`the last release v1.2.3` or `the first commit`).
        wanted: String,
    },
    /// A tag looks like a release but is not SemVer, or the format is bad.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// A revision (`A` of `A..B`) that does not exist.
    #[error("{path}: `{rev}` does not name a commit; hint: use a tag, branch or commit id")]
    UnknownRevision {
        /// The repository.
        path: PathBuf,
        /// The revision.
        rev: String,
    },
    /// Anything else gix reports (corrupt objects, unreadable refs).
    #[error("{path}: {what}: {detail}")]
    Gix {
        /// The repository.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// What gix said.
        detail: String,
    },
}

/// Something the caller should show but that does not stop the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// HEAD is detached (CI checkouts often are); the walk starts at the commit.
    DetachedHead {
        /// The commit HEAD points to.
        commit: String,
    },
    /// A commit message (or author) is not valid UTF-8; invalid bytes became U+FFFD.
    NonUtf8Message {
        /// The commit.
        commit: String,
    },
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Warning::DetachedHead { commit } => write!(
                f,
                "HEAD is detached at {}; planning from that commit",
                short(commit)
            ),
            Warning::NonUtf8Message { commit } => write!(
                f,
                "commit {} has a message that is not UTF-8; invalid bytes are shown as U+FFFD",
                short(commit)
            ),
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

/// Where HEAD is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The commit.
    pub commit: ObjectId,
    /// The branch (`main`), `None` when detached.
    pub branch: Option<String>,
}

/// A tag of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Short name (`v1.2.3`).
    pub name: String,
    /// The commit it points to (annotated tags peeled).
    pub commit: ObjectId,
    /// Annotated (a tag object) or lightweight.
    pub annotated: bool,
}

/// A release: a tag of the configured format, with its version and commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Tag name.
    pub tag: String,
    /// Version.
    pub version: semver::Version,
    /// The tagged commit.
    pub commit: ObjectId,
}

/// A commit as read from the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Full hex id.
    pub id: String,
    /// Number of parents (a merge has more than one).
    pub parents: usize,
    /// The message (lossily decoded if not UTF-8).
    pub message: String,
    /// Author name.
    pub author_name: String,
    /// Author email.
    pub author_email: String,
    /// Author time, seconds since the Unix epoch.
    pub time: i64,
    /// Author time zone offset in seconds east of UTC.
    pub offset: i32,
}

/// Whether merge commits are part of a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergePolicy {
    /// Leave merge commits out (their branches' commits are still walked).
    #[default]
    Skip,
    /// Keep merge commits.
    Include,
}

/// How to walk.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Merge commits.
    pub merges: MergePolicy,
    /// Follow only first parents (the main line).
    pub first_parent: bool,
    /// Only commits that change something under this path (relative to the repository root), for
    /// monorepo packages. A merge counts only if it differs from every parent there, as in `git log -- path`.
    pub path: Option<PathBuf>,
}

/// An open repository.
pub struct Repo {
    repo: gix::Repository,
    path: PathBuf,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("path", &self.path).finish()
    }
}

impl Repo {
    /// Opens the repository containing `path` (searching upwards, like git).
    pub fn open(path: &Path) -> Result<Repo, GitError> {
        if !path.is_dir() {
            return Err(GitError::NoSuchDirectory {
                path: path.to_owned(),
            });
        }
        let mut repo = gix::discover(path).map_err(|e| GitError::NotARepository {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        // No object cache: walks read each commit once, and copying every object into a cache
        // costs more than the rare repeated lookup saves.
        // Packed commits and trees are usually deltas against their neighbours; without a
        // delta-base cache every lookup re-resolves a chain of up to 50 deltas (git keeps one too).
        repo.objects.set_pack_cache(|| {
            Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                64 * 1024 * 1024,
            ))
        });
        let root = repo
            .workdir()
            .map_or_else(|| repo.git_dir().to_owned(), Path::to_owned);
        Ok(Repo { repo, path: root })
    }

    /// The work tree root (or git dir of a bare repository).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn gix_err(&self, what: &'static str) -> impl Fn(gix::Error) -> GitError + '_ {
        move |e| GitError::Gix {
            path: self.path.clone(),
            what,
            detail: e.to_string(),
        }
    }

    /// Where HEAD is; an error if HEAD has no commit yet.
    pub fn head(&self) -> Result<Head, GitError> {
        let head = self.repo.head().map_err(self.gix_err("reading HEAD"))?;
        if head.is_unborn() {
            let branch = head
                .referent_name()
                .map(|n| n.shorten().to_str_lossy().into_owned())
                .unwrap_or_default();
            return Err(GitError::UnbornHead {
                path: self.path.clone(),
                branch,
            });
        }
        let branch = head
            .referent_name()
            .map(|n| n.shorten().to_str_lossy().into_owned());
        let commit = self
            .repo
            .head_commit()
            .map_err(self.gix_err("reading HEAD's commit"))?
            .id;
        Ok(Head { commit, branch })
    }

    /// HEAD, plus a warning if it is detached.
    pub fn head_with_warnings(&self, warnings: &mut Vec<Warning>) -> Result<Head, GitError> {
        let head = self.head()?;
        if head.branch.is_none() {
            warnings.push(Warning::DetachedHead {
                commit: head.commit.to_string(),
            });
        }
        Ok(head)
    }

    /// All tags that point (possibly through tag objects) to commits.
    pub fn tags(&self) -> Result<Vec<Tag>, GitError> {
        let refs = self
            .repo
            .references()
            .map_err(self.gix_err("listing references"))?;
        let iter = refs.tags().map_err(self.gix_err("listing tags"))?;
        let mut out = Vec::new();
        for reference in iter {
            let mut reference = reference.map_err(|e| GitError::Gix {
                path: self.path.clone(),
                what: "reading a tag",
                detail: e.to_string(),
            })?;
            let name = reference.name().shorten().to_str_lossy().into_owned();
            let direct = reference.id().detach();
            // Peeling to an id and checking the object's header avoids decoding each tagged
            // commit (a repository can have thousands of tags).
            let Ok(peeled) = reference.peel_to_id() else {
                continue;
            };
            let peeled = peeled.detach();
            // Tags of trees or blobs are not releases; skip what does not peel to a commit.
            let is_commit = self
                .repo
                .find_header(peeled)
                .is_ok_and(|h| h.kind() == gix::object::Kind::Commit);
            if !is_commit {
                continue;
            }
            out.push(Tag {
                name,
                commit: peeled,
                annotated: peeled != direct,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The releases (tags of `format`), lowest version first.
    pub fn releases(&self, format: &TagFormat) -> Result<Vec<Release>, GitError> {
        let tags = self.tags()?;
        let sorted: Vec<ReleaseTag> =
            cutover_core::tag::release_tags(format, tags.iter().map(|t| t.name.as_str()))?;
        Ok(sorted
            .into_iter()
            .filter_map(|r| {
                let tag = tags.iter().find(|t| t.name == r.name)?;
                Some(Release {
                    tag: r.name,
                    version: r.version,
                    commit: tag.commit,
                })
            })
            .collect())
    }

    /// A commit's author time (seconds since the Unix epoch).
    pub fn commit_time(&self, id: ObjectId) -> Result<i64, GitError> {
        let commit = self
            .repo
            .find_commit(id)
            .map_err(self.gix_err("reading a commit"))?;
        let author = commit
            .author()
            .map_err(self.gix_err("decoding a commit's author"))?;
        Ok(author.seconds())
    }

    /// Resolves a revision (tag, branch, commit id, `HEAD~2`) to a commit.
    pub fn resolve(&self, rev: &str) -> Result<ObjectId, GitError> {
        let unknown = || GitError::UnknownRevision {
            path: self.path.clone(),
            rev: rev.to_owned(),
        };
        let name = rev.trim();
        if let Ok(mut r) = self.repo.find_reference(name)
            && let Ok(c) = r.peel_to_commit()
        {
            return Ok(c.id);
        }
        if let Ok(mut r) = self
            .repo
            .find_reference(format!("refs/tags/{name}").as_str())
            && let Ok(c) = r.peel_to_commit()
        {
            return Ok(c.id);
        }
        if name == "HEAD" {
            return Ok(self.head()?.commit);
        }
        let id = ObjectId::from_hex(name.as_bytes()).map_err(|_| unknown())?;
        let object = self.repo.find_object(id).map_err(|_| unknown())?;
        object.peel_to_commit().map(|c| c.id).map_err(|_| unknown())
    }

    /// The commits reachable from `tip` but not from `hide`, newest first.
    /// `hide_label` names `hide` in the shallow-clone error (`the last release v1.2.3`).
    pub fn commits(
        &self,
        tip: ObjectId,
        hide: Option<ObjectId>,
        hide_label: &str,
        options: &WalkOptions,
        warnings: &mut Vec<Warning>,
    ) -> Result<Vec<Commit>, GitError> {
        let shallow: HashSet<ObjectId> = self
            .repo
            .shallow_commits()
            .map_err(self.gix_err("reading the shallow file"))?
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        if let Some(hide) = hide
            && !self.repo.has_object(hide)
        {
            return Err(GitError::Shallow {
                path: self.path.clone(),
                boundary: "(unknown)".to_owned(),
                wanted: format!("{hide_label} ({hide})"),
            });
        }
        let mut platform = self
            .repo
            .rev_walk([tip])
            .sorting(Sorting::ByCommitTime(CommitTimeOrder::NewestFirst));
        if let Some(hide) = hide {
            platform = platform.with_hidden([hide]);
        }
        if options.first_parent {
            platform = platform.first_parent_only();
        }
        let walk = platform.all().map_err(self.gix_err("starting the walk"))?;
        let mut out = Vec::new();
        let path = options
            .path
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        for info in walk {
            let info = info.map_err(|e| GitError::Gix {
                path: self.path.clone(),
                what: "walking history",
                detail: e.to_string(),
            })?;
            if shallow.contains(&info.id) {
                // The walk reached the cut-off: whatever it was looking for lies beyond.
                return Err(GitError::Shallow {
                    path: self.path.clone(),
                    boundary: info.id.to_string(),
                    wanted: hide_label.to_owned(),
                });
            }
            let parents = info.parent_ids.len();
            if parents > 1 && options.merges == MergePolicy::Skip {
                continue;
            }
            let object = self
                .repo
                .find_object(info.id)
                .map_err(self.gix_err("reading a commit"))?;
            let decoded = gix::objs::CommitRef::from_bytes(&object.data, object.id.kind())
                .map_err(|e| GitError::Gix {
                    path: self.path.clone(),
                    what: "decoding a commit",
                    detail: e.to_string(),
                })?;
            if let Some(path) = path
                && !self.touches(&decoded, path)?
            {
                continue;
            }
            out.push(self.to_commit(info.id, &decoded, parents, warnings)?);
        }
        Ok(out)
    }

    /// Splits history into releases in one pass: for each tip in order (oldest release first, HEAD
    /// last), the commits reachable from it that no earlier tip reaches. Each commit is read once, so
    /// a changelog of every release costs one walk of the history. Within a part, commits are
    /// newest first by committer time (ties: discovery order). A commit reachable from two releases
    /// belongs to the lower one, so every commit appears in exactly one section.
    pub fn partition(
        &self,
        tips: &[ObjectId],
        options: &WalkOptions,
        warnings: &mut Vec<Warning>,
    ) -> Result<Vec<Vec<Commit>>, GitError> {
        let mut parts = Vec::with_capacity(tips.len());
        self.partition_each(tips, options, warnings, |_, part| parts.push(part))?;
        Ok(parts)
    }

    /// [`Repo::partition`], handing each part to `each(index, commits)` as soon as it is read,
    /// so that a consumer (rendering) can run alongside the walk.
    pub fn partition_each(
        &self,
        tips: &[ObjectId],
        options: &WalkOptions,
        warnings: &mut Vec<Warning>,
        mut each: impl FnMut(usize, Vec<Commit>),
    ) -> Result<(), GitError> {
        let shallow: HashSet<ObjectId> = self
            .repo
            .shallow_commits()
            .map_err(self.gix_err("reading the shallow file"))?
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let path = options
            .path
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut stack: Vec<ObjectId> = Vec::new();
        for (index, tip) in tips.iter().enumerate() {
            let mut part: Vec<(i64, Commit)> = Vec::new();
            if seen.insert(*tip) {
                stack.push(*tip);
            }
            while let Some(id) = stack.pop() {
                if shallow.contains(&id) {
                    return Err(GitError::Shallow {
                        path: self.path.clone(),
                        boundary: id.to_string(),
                        wanted: "the first commit".to_owned(),
                    });
                }
                let object = self
                    .repo
                    .find_object(id)
                    .map_err(self.gix_err("reading a commit"))?;
                let decoded = gix::objs::CommitRef::from_bytes(&object.data, object.id.kind())
                    .map_err(|e| GitError::Gix {
                        path: self.path.clone(),
                        what: "decoding a commit",
                        detail: e.to_string(),
                    })?;
                let mut parents = 0;
                for parent in decoded.parents() {
                    parents += 1;
                    if options.first_parent && parents > 1 {
                        break;
                    }
                    if seen.insert(parent) {
                        stack.push(parent);
                    }
                }
                let parents = decoded.parents().count();
                if parents > 1 && options.merges == MergePolicy::Skip {
                    continue;
                }
                if let Some(path) = path
                    && !self.touches(&decoded, path)?
                {
                    continue;
                }
                let committed = decoded.committer().map(|c| c.seconds()).unwrap_or_default();
                part.push((committed, self.to_commit(id, &decoded, parents, warnings)?));
            }
            // Stable: equal times keep discovery order (parents after children).
            part.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
            each(index, part.into_iter().map(|(_, c)| c).collect());
        }
        Ok(())
    }

    fn to_commit(
        &self,
        id: ObjectId,
        decoded: &gix::objs::CommitRef<'_>,
        parents: usize,
        warnings: &mut Vec<Warning>,
    ) -> Result<Commit, GitError> {
        let id = id.to_string();
        let author = decoded.author().map_err(|e| GitError::Gix {
            path: self.path.clone(),
            what: "decoding a commit's author",
            detail: e.to_string(),
        })?;
        let time = author.time().unwrap_or_default();
        let mut lossy = false;
        let mut text = |b: &[u8]| match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                lossy = true;
                String::from_utf8_lossy(b).into_owned()
            }
        };
        let message = text(decoded.message);
        let author_name = text(author.name.trim());
        let author_email = text(author.email.trim());
        if lossy {
            warnings.push(Warning::NonUtf8Message { commit: id.clone() });
        }
        Ok(Commit {
            id,
            parents,
            message,
            author_name,
            author_email,
            time: time.seconds,
            offset: time.offset,
        })
    }

    /// Whether a commit changes anything under `path`: the tree entry there differs from every parent's.
    fn touches(&self, commit: &gix::objs::CommitRef<'_>, path: &Path) -> Result<bool, GitError> {
        let here = self.entry_at(commit.tree(), path)?;
        let mut parents = commit.parents().peekable();
        if parents.peek().is_none() {
            return Ok(here.is_some());
        }
        for parent in parents {
            let parent = self
                .repo
                .find_commit(parent)
                .map_err(self.gix_err("reading a parent commit"))?;
            let tree = parent.tree_id().map_err(self.gix_err("reading a tree"))?;
            if self.entry_at(tree.detach(), path)? == here {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn entry_at(&self, tree: ObjectId, path: &Path) -> Result<Option<ObjectId>, GitError> {
        let tree = self
            .repo
            .find_tree(tree)
            .map_err(self.gix_err("reading a tree"))?;
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(self.gix_err("looking up a path in a tree"))?;
        Ok(entry.map(|e| e.object_id()))
    }
}

#[cfg(test)]
mod tests;
