//! Artifacts in a local folder. Uploads stream to a temporary file beside the target and are
//! renamed into place once complete and synced, so readers never see a partial file.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use keel_core::artifact::ByteStream;
use keel_core::{ArtifactPath, ArtifactStore, Error, FileInfo, Result};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// Read buffer for downloads.
const CHUNK: usize = 256 * 1024;

/// [`ArtifactStore`] on a local folder.
pub struct LocalArtifactStore {
    root: PathBuf,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::not_found(format!(
            "{what} {}: no such file or directory",
            path.display()
        ))
    } else {
        Error::internal(format!("{what} {}: {e}", path.display()))
    }
}

impl LocalArtifactStore {
    /// Opens (creating if needed) the folder at `root`.
    pub async fn open(root: &Path) -> Result<Self> {
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|e| io_err("cannot create artifact folder", root, e))?;
        let root = tokio::fs::canonicalize(root)
            .await
            .map_err(|e| io_err("cannot resolve artifact folder", root, e))?;
        Ok(LocalArtifactStore { root })
    }

    /// The file-system path of an artifact path: always below the root, as every component of an
    /// [`ArtifactPath`] is a plain name.
    fn resolve(&self, path: &ArtifactPath) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(path.components());
        p
    }
}

#[async_trait::async_trait]
impl ArtifactStore for LocalArtifactStore {
    async fn put(&self, path: &ArtifactPath, mut body: ByteStream) -> Result<u64> {
        let target = self.resolve(path);
        let dir = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err("cannot create folder", &dir, e))?;
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_dir()) {
            return Err(Error::invalid(format!(
                "Cannot upload to '{path}': it is a directory"
            )));
        }
        let tmp = dir.join(format!(
            ".{}.keel-upload-{}",
            path.file_name(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| io_err("cannot create", &tmp, e))?;
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::bad_request(format!("upload of '{path}' was interrupted: {e}"))
                })?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| io_err("cannot write", &tmp, e))?;
                written += chunk.len() as u64;
            }
            file.sync_all()
                .await
                .map_err(|e| io_err("cannot sync", &tmp, e))?;
            drop(file);
            tokio::fs::rename(&tmp, &target)
                .await
                .map_err(|e| io_err("cannot move upload into place at", &target, e))?;
            Ok(written)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn get(&self, path: &ArtifactPath) -> Result<(u64, ByteStream)> {
        let p = self.resolve(path);
        let file = tokio::fs::File::open(&p)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Error::not_found(format!("Artifact '{path}' not found"))
                }
                _ => io_err("cannot open", &p, e),
            })?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_err("cannot stat", &p, e))?;
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
        let p = dir
            .map(|d| self.resolve(d))
            .unwrap_or_else(|| self.root.clone());
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
            Err(e) => return Err(io_err("cannot list", &p, e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| io_err("cannot list", &p, e))?
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".keel-upload-") {
                continue;
            }
            let meta = entry
                .metadata()
                .await
                .map_err(|e| io_err("cannot stat", &entry.path(), e))?;
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
        let p = self.resolve(path);
        match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&p)
                .await
                .map_err(|e| io_err("cannot delete", &p, e)),
            Ok(_) => tokio::fs::remove_file(&p)
                .await
                .map_err(|e| io_err("cannot delete", &p, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("cannot delete", &p, e)),
        }
    }

    fn root_uri(&self) -> String {
        format!("file://{}", self.root.display())
    }

    async fn head(&self, path: &ArtifactPath) -> Result<Option<u64>> {
        let p = self.resolve(path);
        match tokio::fs::metadata(&p).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("cannot inspect", &p, e)),
        }
    }

    /// Copies `src` beside the target (by `copy_file_range`, or a reflink where the file
    /// system offers one) and renames it into place. On Linux durability waits for
    /// [`ArtifactStore::sync`]; elsewhere each copy is synced at once.
    async fn put_file(&self, path: &ArtifactPath, src: &Path) -> Result<u64> {
        let target = self.resolve(path);
        let src = src.to_path_buf();
        tokio::task::spawn_blocking(move || copy_into_place(&src, &target))
            .await
            .map_err(|e| Error::internal(format!("copy task failed: {e}")))?
    }

    /// Checks every path in one blocking task rather than one task per path.
    async fn head_many(&self, paths: &[ArtifactPath]) -> Result<Vec<Option<u64>>> {
        let paths: Vec<PathBuf> = paths.iter().map(|p| self.resolve(p)).collect();
        tokio::task::spawn_blocking(move || paths.iter().map(|p| file_size(p)).collect())
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
        let jobs: Vec<(PathBuf, PathBuf)> = files
            .iter()
            .map(|(p, src)| (src.clone(), self.resolve(p)))
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::task::spawn_blocking(move || copy_all(&jobs, &tx));
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
                let dir =
                    std::fs::File::open(&root).map_err(|e| io_err("cannot open", &root, e))?;
                rustix::fs::syncfs(&dir)
                    .map_err(|e| Error::internal(format!("cannot sync {}: {e}", root.display())))
            })
            .await
            .map_err(|e| Error::internal(format!("sync task failed: {e}")))??;
        }
        Ok(())
    }
}

/// Threads [`LocalArtifactStore::put_files`] copies on.
pub const COPY_THREADS: usize = 8;

fn file_size(p: &Path) -> Result<Option<u64>> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot inspect", p, e)),
    }
}

/// Copies each `(src, target)` pair, several at a time, sending each size to `tx`; stops at
/// the first error (the copies already made are complete files).
fn copy_all(
    jobs: &[(PathBuf, PathBuf)],
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
                    let Some((src, target)) = jobs.get(i) else {
                        break;
                    };
                    match copy_into_place(src, target) {
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

/// Copies `src` to a temporary file beside `target` and renames it into place, so `target`
/// is either absent or complete. The folder is created when missing.
fn copy_into_place(src: &Path, target: &Path) -> Result<u64> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let dir = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.keel-upload-{}-{}",
        PID.get_or_init(std::process::id),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut input = std::fs::File::open(src).map_err(|e| io_err("cannot read", src, e))?;
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
    };
    let mut output = match create() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| io_err("cannot create folder", dir, e))?;
            create()
        }
        other => other,
    }
    .map_err(|e| io_err("cannot create", &tmp, e))?;
    let copied = copy_bytes(&mut input, &mut output)
        .map_err(|e| io_err("cannot copy", src, e))
        .and_then(|n| {
            if !cfg!(target_os = "linux") {
                output
                    .sync_all()
                    .map_err(|e| io_err("cannot sync", &tmp, e))?;
            }
            drop(output);
            std::fs::rename(&tmp, target)
                .map_err(|e| io_err("cannot move into place at", target, e))?;
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
        assert!(store.get(&p).await.is_err());
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
        assert!(store.put(&p, broken).await.is_err());
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
        assert!(store.put_files(&bad, &|_| {}).await.is_err());
        let names: Vec<String> = std::fs::read_dir(dir.path().join("d0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
        assert!(!names.contains(&"ghost".to_string()));
    }
}
