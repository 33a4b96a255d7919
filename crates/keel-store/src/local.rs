//! Artifacts in a local folder. Uploads stream to a temporary file in the root's hidden
//! staging folder and are renamed into place once complete and synced, so readers never see a
//! partial file; a crash leaves at most a file in staging, which the next start removes.
//!
//! Every path is checked on the file system as well as by [`ArtifactPath`]'s rules: a path
//! that resolves outside the root (through a symbolic link) is refused, and so is one that
//! goes through a file. Errors name the artifact path, never the server's own paths (those go
//! to the log).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use keel_core::artifact::ByteStream;
use keel_core::{ArtifactPath, ArtifactStore, Error, ErrorCode, FileInfo, Result};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// Read buffer for downloads.
const CHUNK: usize = 256 * 1024;

/// The hidden folder below the root that holds uploads in progress (a reserved name: no
/// artifact path may start with it).
pub const STAGING: &str = ".keel-staging";

/// A staged file untouched for this long is a crash's leftover (a live upload writes to it
/// continually), removed when a store opens.
pub const STALE_UPLOAD: Duration = Duration::from_secs(10 * 60);

/// [`ArtifactStore`] on a local folder.
pub struct LocalArtifactStore {
    root: PathBuf,
    staging: PathBuf,
}

/// An I/O error as the caller sees it: about the artifact path `rel`, with the right code
/// (missing: 404; through a file or a name too long: 400; disk full: 507), the server's own
/// path logged rather than answered.
fn io_err(what: &str, rel: &str, path: &Path, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => Error::not_found(format!("Artifact '{rel}' not found")),
        ErrorKind::NotADirectory => Error::invalid(format!(
            "Artifact path '{rel}' goes through a file, not a folder"
        )),
        ErrorKind::AlreadyExists if what == "create folder" => Error::invalid(format!(
            "Artifact path '{rel}' goes through a file, not a folder"
        )),
        ErrorKind::InvalidFilename => Error::invalid(format!(
            "Artifact path '{rel}' has a name too long for the file system"
        )),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded => {
            tracing::error!(path = %path.display(), "{what}: {e}");
            Error::new(
                ErrorCode::ResourceExhausted,
                format!("No space left to store artifact '{rel}'"),
            )
        }
        _ => {
            tracing::error!(path = %path.display(), "{what}: {e}");
            Error::internal(format!("cannot {what} artifact '{rel}': {}", e.kind()))
        }
    }
}

/// Refuses `path` (below `root`) when it leaves the root through a symbolic link: its longest
/// existing ancestor (itself, when it exists) must resolve below the root.
fn check_within(root: &Path, path: &Path, rel: &str) -> Result<()> {
    let mut probe = path;
    loop {
        match std::fs::canonicalize(probe) {
            Ok(real) if real.starts_with(root) => return Ok(()),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "artifact path leaves the root");
                return Err(Error::invalid(format!(
                    "Artifact path '{rel}' leaves the artifact root through a symbolic link"
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match probe.parent() {
                Some(parent) if parent.starts_with(root) => probe = parent,
                _ => return Ok(()),
            },
            // Through a file: nothing can be read or written there, which the operation
            // itself reports.
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(()),
            Err(e) => return Err(io_err("resolve", rel, path, e)),
        }
    }
}

/// Removes staged files nobody has written to for [`STALE_UPLOAD`]; returns how many.
fn remove_stale_uploads(staging: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_UPLOAD));
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// A new name in the staging folder (short, so that any name the file system takes can be
/// uploaded: the temporary name does not embed the target's).
fn staged_name(staging: &Path) -> PathBuf {
    staging.join(format!(".keel-upload-{}", uuid::Uuid::new_v4().simple()))
}

impl LocalArtifactStore {
    /// Opens (creating if needed) the folder at `root`, and removes what crashed uploads left
    /// in its staging folder.
    pub async fn open(root: &Path) -> Result<Self> {
        let shown = root.display().to_string();
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|e| io_err("create folder", &shown, root, e))?;
        let root = tokio::fs::canonicalize(root)
            .await
            .map_err(|e| io_err("resolve", &shown, root, e))?;
        let staging = root.join(STAGING);
        tokio::fs::create_dir_all(&staging)
            .await
            .map_err(|e| io_err("create folder", STAGING, &staging, e))?;
        let dir = staging.clone();
        let removed = tokio::task::spawn_blocking(move || remove_stale_uploads(&dir))
            .await
            .unwrap_or(0);
        if removed > 0 {
            tracing::info!(removed, "removed uploads a crash left unfinished");
        }
        Ok(LocalArtifactStore { root, staging })
    }

    /// The file-system path of an artifact path: below the root, as every component of an
    /// [`ArtifactPath`] is a plain name; the staging folder is refused.
    fn resolve(&self, path: &ArtifactPath) -> Result<PathBuf> {
        if path.components().next() == Some(STAGING) {
            return Err(Error::invalid(format!(
                "Artifact path '{path}' is reserved: '{STAGING}' holds uploads in progress"
            )));
        }
        let mut p = self.root.clone();
        p.extend(path.components());
        Ok(p)
    }

    /// [`Self::resolve`], then refused if it leaves the root through a symbolic link.
    async fn locate(&self, path: &ArtifactPath) -> Result<PathBuf> {
        let p = self.resolve(path)?;
        self.within(&p, &path.to_string()).await?;
        Ok(p)
    }

    /// Refuses `p` when it leaves the root through a symbolic link.
    async fn within(&self, p: &Path, rel: &str) -> Result<()> {
        let (root, probe, rel) = (self.root.clone(), p.to_path_buf(), rel.to_string());
        tokio::task::spawn_blocking(move || check_within(&root, &probe, &rel))
            .await
            .map_err(|e| Error::internal(format!("path check failed: {e}")))?
    }
}

#[async_trait::async_trait]
impl ArtifactStore for LocalArtifactStore {
    async fn put(&self, path: &ArtifactPath, mut body: ByteStream) -> Result<u64> {
        let rel = path.to_string();
        let target = self.locate(path).await?;
        let dir = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err("create folder", &rel, &dir, e))?;
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
            return Err(Error::invalid(format!(
                "Cannot upload to '{path}': it is a directory"
            )));
        }
        let tmp = staged_name(&self.staging);
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_err("create", &rel, &tmp, e))?;
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::bad_request(format!("upload of '{path}' was interrupted: {e}"))
                })?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_err("write", &rel, &tmp, e))?;
                written += chunk.len() as u64;
            }
            file.sync_all()
                .await
                .map_err(|e| io_err("sync", &rel, &tmp, e))?;
            drop(file);
            tokio::fs::rename(&tmp, &target)
                .await
                .map_err(|e| io_err("move into place", &rel, &target, e))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get(&self, path: &ArtifactPath) -> Result<(u64, ByteStream)> {
        let rel = path.to_string();
        let p = self.locate(path).await?;
        let file = tokio::fs::File::open(&p)
            .await
            .map_err(|e| io_err("open", &rel, &p, e))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_err("inspect", &rel, &p, e))?;
        if meta.is_dir() {
            return Err(Error::invalid(format!(
                "Artifact '{path}' is a directory; list it instead"
            )));
        }
        Ok((
            meta.len(),
            Box::pin(ReaderStream::with_capacity(file, CHUNK)),
        ))
    }

    async fn list(&self, dir: Option<&ArtifactPath>) -> Result<Vec<FileInfo>> {
        let (p, rel) = match dir {
            Some(d) => (self.locate(d).await?, d.to_string()),
            None => (self.root.clone(), String::new()),
        };
        let mut rd = match tokio::fs::read_dir(&p).await {
            Ok(rd) => rd,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Vec::new());
            }
            Err(e) => return Err(io_err("list", &rel, &p, e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| io_err("list", &rel, &p, e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".keel-upload-") || (dir.is_none() && name == STAGING) {
                continue;
            }
            // A symbolic link is listed as what it points to, if that is within the root.
            let target = entry.path();
            let Ok(real) = tokio::fs::canonicalize(&target).await else {
                continue;
            };
            if !real.starts_with(&self.root) {
                continue;
            }
            let meta = tokio::fs::metadata(&real)
                .await
                .map_err(|e| io_err("inspect", &rel, &target, e))?;
            out.push(FileInfo {
                path: name,
                is_dir: meta.is_dir(),
                file_size: (!meta.is_dir()).then_some(meta.len()),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        let rel = path.to_string();
        let p = self.resolve(path)?;
        // The link itself, never what it points to.
        match tokio::fs::symlink_metadata(&p).await {
            Ok(m) if m.is_dir() => {
                self.locate(path).await?;
                tokio::fs::remove_dir_all(&p)
                    .await
                    .map_err(|e| io_err("delete", &rel, &p, e))
            }
            Ok(_) => {
                if let Some(parent) = p.parent() {
                    self.within(parent, &rel).await?;
                }
                tokio::fs::remove_file(&p)
                    .await
                    .map_err(|e| io_err("delete", &rel, &p, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(()),
            Err(e) => Err(io_err("delete", &rel, &p, e)),
        }
    }

    fn root_uri(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn head(&self, path: &ArtifactPath) -> Result<Option<u64>> {
        let rel = path.to_string();
        let p = self.locate(path).await?;
        match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(None),
            Err(e) => Err(io_err("inspect", &rel, &p, e)),
        }
    }

    /// Copies `src` into the staging folder (by `copy_file_range`, or a reflink where the file
    /// system offers one) and renames it into place. On Linux durability waits for
    /// [`ArtifactStore::sync`]; elsewhere each copy is synced at once.
    async fn put_file(&self, path: &ArtifactPath, src: &Path) -> Result<u64> {
        let target = self.locate(path).await?;
        let job = Copy {
            src: src.to_path_buf(),
            target,
            rel: path.to_string(),
        };
        let staging = self.staging.clone();
        tokio::task::spawn_blocking(move || copy_into_place(&job, &staging))
            .await
            .map_err(|e| Error::internal(format!("copy task failed: {e}")))?
    }

    /// Checks every path in one blocking task rather than one task per path.
    async fn head_many(&self, paths: &[ArtifactPath]) -> Result<Vec<Option<u64>>> {
        let paths: Vec<(PathBuf, String)> = paths
            .iter()
            .map(|p| Ok((self.resolve(p)?, p.to_string())))
            .collect::<Result<_>>()?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|(p, rel)| {
                    check_within(&root, p, rel)?;
                    file_size(p, rel)
                })
                .collect()
        })
        .await
        .map_err(|e| Error::internal(format!("inspect task failed: {e}")))?
    }

    /// Copies on [`COPY_THREADS`] threads of one blocking task (small files cost file system
    /// round trips, not bandwidth, so a few run at once), reporting sizes as they land.
    async fn put_files(
        &self,
        files: &[(ArtifactPath, PathBuf)],
        done: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<u64>> {
        let jobs: Vec<Copy> = files
            .iter()
            .map(|(p, src)| {
                Ok(Copy {
                    src: src.clone(),
                    target: self.resolve(p)?,
                    rel: p.to_string(),
                })
            })
            .collect::<Result<_>>()?;
        let (root, staging) = (self.root.clone(), self.staging.clone());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::task::spawn_blocking(move || copy_all(&root, &staging, &jobs, &tx));
        while let Some(n) = rx.recv().await {
            done(n);
        }
        task.await
            .map_err(|e| Error::internal(format!("copy task failed: {e}")))?
    }

    async fn sync(&self) -> Result<()> {
        #[cfg(target_os = "linux")]
        {
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || {
                let dir = std::fs::File::open(&root).map_err(|e| io_err("open", "", &root, e))?;
                rustix::fs::syncfs(&dir).map_err(|e| {
                    io_err(
                        "sync",
                        "",
                        &root,
                        std::io::Error::from_raw_os_error(e.raw_os_error()),
                    )
                })
            })
            .await
            .map_err(|e| Error::internal(format!("sync task failed: {e}")))??;
        }
        Ok(())
    }
}

/// One file to copy into the store.
struct Copy {
    src: PathBuf,
    target: PathBuf,
    /// The artifact path, for messages.
    rel: String,
}

/// Threads [`LocalArtifactStore::put_files`] copies on.
pub const COPY_THREADS: usize = 8;

fn file_size(p: &Path, rel: &str) -> Result<Option<u64>> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(None),
        Err(e) => Err(io_err("inspect", rel, p, e)),
    }
}

/// Copies each job, several at a time, sending each size to `tx`; stops at the first error
/// (the copies already made are complete files).
fn copy_all(
    root: &Path,
    staging: &Path,
    jobs: &[Copy],
    tx: &tokio::sync::mpsc::UnboundedSender<u64>,
) -> Result<Vec<u64>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let sizes: Vec<std::sync::OnceLock<u64>> =
        jobs.iter().map(|_| std::sync::OnceLock::new()).collect();
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..COPY_THREADS.min(jobs.len()) {
            scope.spawn(|| {
                use std::sync::atomic::Ordering::Relaxed;
                while !failed.load(Relaxed) {
                    let i = next.fetch_add(1, Relaxed);
                    let Some(job) = jobs.get(i) else {
                        break;
                    };
                    let copied = check_within(root, &job.target, &job.rel)
                        .and_then(|()| copy_into_place(job, staging));
                    match copied {
                        Ok(n) => {
                            let _ = sizes[i].set(n);
                            let _ = tx.send(n);
                        }
                        Err(e) => {
                            failed.store(true, Relaxed);
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(sizes
        .into_iter()
        .map(|s| s.into_inner().unwrap_or(0))
        .collect())
}

/// Copies all of `input` into `output`: in the kernel by `copy_file_range` on Linux (a reflink
/// where the file system offers one), through a buffer elsewhere or where the kernel refuses.
fn copy_bytes(input: &mut std::fs::File, output: &mut std::fs::File) -> std::io::Result<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut total = 0u64;
        loop {
            match rustix::fs::copy_file_range(&*input, None, &*output, None, 1 << 30) {
                Ok(0) => return Ok(total),
                Ok(n) => total += n as u64,
                // Nothing copied yet and the kernel cannot do it here: copy through a buffer.
                Err(
                    rustix::io::Errno::XDEV
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::OPNOTSUPP
                    | rustix::io::Errno::INVAL,
                ) if total == 0 => {
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    std::io::copy(input, output)
}

/// Copies a job's source into the staging folder and renames it into place, so its target is
/// either absent or complete. The target's folder is created when missing.
fn copy_into_place(job: &Copy, staging: &Path) -> Result<u64> {
    let Copy { src, target, rel } = job;
    let dir = target.parent().unwrap_or(Path::new("."));
    let tmp = staged_name(staging);
    let mut input = std::fs::File::open(src)
        .map_err(|e| Error::invalid(format!("cannot read '{}': {e}", src.display())))?;
    let mut output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| io_err("create", rel, &tmp, e))?;
    let copied = copy_bytes(&mut input, &mut output)
        .map_err(|e| io_err("copy", rel, src, e))
        .and_then(|n| {
            if !cfg!(target_os = "linux") {
                output
                    .sync_all()
                    .map_err(|e| io_err("sync", rel, &tmp, e))?;
            }
            drop(output);
            let moved = match std::fs::rename(&tmp, target) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| io_err("create folder", rel, dir, e))?;
                    std::fs::rename(&tmp, target)
                }
                other => other,
            };
            moved.map_err(|e| io_err("move into place", rel, target, e))?;
            Ok(n)
        });
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        Box::pin(futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        ))
    }

    #[tokio::test]
    async fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::open(dir.path()).await.unwrap();
        let p = ArtifactPath::parse("1/run/artifacts/a/b.txt").unwrap();
        assert_eq!(
            store.put(&p, body(&[b"hello ", b"world"])).await.unwrap(),
            11
        );
        let (len, mut s) = store.get(&p).await.unwrap();
        assert_eq!(len, 11);
        let mut got = Vec::new();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, b"hello world");
        let listing = store
            .list(Some(&ArtifactPath::parse("1/run/artifacts").unwrap()))
            .await
            .unwrap();
        assert_eq!(
            listing,
            vec![FileInfo {
                path: "a".into(),
                is_dir: true,
                file_size: None
            }]
        );
        store
            .delete(&ArtifactPath::parse("1/run/artifacts/a").unwrap())
            .await
            .unwrap();
        {
            let e = store.get(&p).await.err().expect("an error").to_string();
            assert!(e.contains("not found"), "{e}");
        }
        assert!(
            store
                .list(Some(&ArtifactPath::parse("nope").unwrap()))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn failed_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::open(dir.path()).await.unwrap();
        let p = ArtifactPath::parse("x/f.bin").unwrap();
        let broken: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"partial")),
            Err(std::io::Error::other("client went away")),
        ]));
        {
            let e = store
                .put(&p, broken)
                .await
                .expect_err("an error")
                .to_string();
            assert!(e.contains("was interrupted: client went away"), "{e}");
        }
        assert!(
            store
                .list(Some(&ArtifactPath::parse("x").unwrap()))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn put_files_copies_every_file_and_reports_each() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::open(dir.path()).await.unwrap();
        let files: Vec<(ArtifactPath, PathBuf)> = (0..50)
            .map(|i| {
                let p = src.path().join(format!("{i}.bin"));
                std::fs::write(&p, vec![i as u8; i]).unwrap();
                (ArtifactPath::parse(&format!("d{}/f{i}", i % 7)).unwrap(), p)
            })
            .collect();
        let reported = std::sync::atomic::AtomicU64::new(0);
        let sizes = store
            .put_files(&files, &|n| {
                reported.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap();
        assert_eq!(sizes, (0..50u64).collect::<Vec<_>>());
        assert_eq!(reported.into_inner(), (0..50u64).sum::<u64>());
        let heads = store
            .head_many(&files.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(heads[7], Some(7));
        assert_eq!(
            std::fs::read(dir.path().join("d3/f10")).unwrap(),
            vec![10u8; 10]
        );
        store.sync().await.unwrap();

        // A missing source fails the batch and leaves no temporary file behind.
        let bad = vec![(
            ArtifactPath::parse("d0/ghost").unwrap(),
            src.path().join("nope.bin"),
        )];
        {
            let e = store
                .put_files(&bad, &|_| {})
                .await
                .expect_err("an error")
                .to_string();
            assert!(e.contains("cannot read"), "{e}");
        }
        let names: Vec<String> = std::fs::read_dir(dir.path().join("d0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        assert!(!names.contains(&"ghost".to_string()));
    }

    async fn get_err(store: &LocalArtifactStore, p: &ArtifactPath) -> Error {
        match store.get(p).await {
            Ok(_) => panic!("{p} was read"),
            Err(e) => e,
        }
    }

    async fn read_all(store: &LocalArtifactStore, p: &ArtifactPath) -> Vec<u8> {
        let (_, mut s) = store.get(p).await.unwrap();
        let mut got = Vec::new();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        got
    }

    #[tokio::test]
    async fn impossible_paths_are_client_errors_that_name_no_server_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::open(dir.path()).await.unwrap();
        let file = ArtifactPath::parse("a/f.txt").unwrap();
        store.put(&file, body(&[b"x"])).await.unwrap();
        let through = ArtifactPath::parse("a/f.txt/sub").unwrap();
        let root = dir.path().display().to_string();
        for e in [
            store.put(&through, body(&[b"y"])).await.unwrap_err(),
            get_err(&store, &through).await,
        ] {
            assert_eq!(e.code.http_status(), 400, "{e}");
            assert!(e.message.contains("goes through a file"), "{e}");
            assert!(!e.message.contains(&root), "no server path: {e}");
        }
        store.delete(&through).await.unwrap();
        assert_eq!(store.head(&through).await.unwrap(), None);
        assert!(store.list(Some(&through)).await.unwrap().is_empty());
        let missing = get_err(&store, &ArtifactPath::parse("a/nope").unwrap()).await;
        assert_eq!(missing.code.http_status(), 404);
        assert!(!missing.message.contains(&root), "{missing}");
        // Names up to the file system's limit (255 bytes) upload: the temporary name is short.
        let long = ArtifactPath::parse(&format!("a/{}", "n".repeat(255))).unwrap();
        store.put(&long, body(&[b"long"])).await.unwrap();
        assert_eq!(read_all(&store, &long).await, b"long");
        let too_long = ArtifactPath::parse(&format!("a/{}", "n".repeat(256))).unwrap();
        let e = store.put(&too_long, body(&[b"x"])).await.unwrap_err();
        assert_eq!(e.code.http_status(), 400, "{e}");
        // The staging folder is neither listed nor reachable.
        let names: Vec<String> = store
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(names, ["a"]);
        let staged = ArtifactPath::parse(&format!("{STAGING}/x")).unwrap();
        assert_eq!(
            store
                .put(&staged, body(&[b"x"]))
                .await
                .unwrap_err()
                .code
                .http_status(),
            400
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symbolic_links_out_of_the_root_are_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::open(dir.path()).await.unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("run/link"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("run/out")).unwrap();
        let link = ArtifactPath::parse("run/link").unwrap();
        let into = ArtifactPath::parse("run/out/new.txt").unwrap();
        let through = ArtifactPath::parse("run/out/secret").unwrap();
        for e in [
            get_err(&store, &link).await,
            get_err(&store, &through).await,
            store.put(&into, body(&[b"x"])).await.unwrap_err(),
            store.head(&through).await.unwrap_err(),
            store
                .list(Some(&ArtifactPath::parse("run/out").unwrap()))
                .await
                .unwrap_err(),
        ] {
            assert!(e.message.contains("leaves the artifact root"), "{e}");
        }
        assert!(!outside.path().join("new.txt").exists());
        // Listing the folder shows neither link; deleting one removes the link, not its target.
        assert!(
            store
                .list(Some(&ArtifactPath::parse("run").unwrap()))
                .await
                .unwrap()
                .is_empty()
        );
        store.delete(&link).await.unwrap();
        assert!(outside.path().join("secret").exists());
        assert!(!dir.path().join("run/link").exists());
        // A link that stays inside the root is followed.
        std::fs::write(dir.path().join("run/real.txt"), b"inside").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("run/real.txt"),
            dir.path().join("run/alias"),
        )
        .unwrap();
        assert_eq!(
            read_all(&store, &ArtifactPath::parse("run/alias").unwrap()).await,
            b"inside"
        );
    }

    #[tokio::test]
    async fn uploads_a_crash_left_behind_are_removed_when_the_store_opens() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalArtifactStore::open(dir.path()).await.unwrap();
        drop(store);
        let staging = dir.path().join(STAGING);
        let stale = staging.join(".keel-upload-crashed");
        let live = staging.join(".keel-upload-live");
        std::fs::write(&stale, vec![0u8; 1024]).unwrap();
        std::fs::write(&live, b"still being written").unwrap();
        let old = SystemTime::now() - STALE_UPLOAD - Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        LocalArtifactStore::open(dir.path()).await.unwrap();
        assert!(!stale.exists(), "a crash's leftover is removed");
        assert!(live.exists(), "an upload still written to is left alone");
    }
}
