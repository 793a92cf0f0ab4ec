//! The built-in workspace tools: `list_dir`, `read_file`, `write_file`, `search`.
//!
//! Every worker gets its own workspace directory, `<root>/<worker_id>`, created on first
//! use by [`Workspaces`]. A [`Workspace`] holds one capability: a [`cap_std::fs::Dir`]
//! opened once on that directory. Every file access goes through it, relative to it, so
//! no path can leave the workspace: absolute paths, `..` past the root and symlinks
//! that resolve outside (absolute ones, or relative ones climbing out) are refused by
//! cap-std itself and reported as "outside the workspace". `search` does not follow
//! symlinks at all.
//!
//! A tool never panics and never returns a Rust error: everything ends as a
//! [`ToolOutput`], with `is_error` set for bad arguments, missing files, refused paths
//! and I/O failures. Outputs are capped at [`ToolConfig::max_output_bytes`] with a
//! visible truncation marker; reads are capped too.
//!
//! Tool calls are synchronous (blocking file I/O); the driver runs them on a blocking
//! thread. Files are opened with `O_NONBLOCK` so a FIFO planted in a workspace cannot
//! hang a call.
//!
//! | tool | arguments | output |
//! |---|---|---|
//! | `list_dir` | `{"path"?: string}` (default `.`) | one entry a line, sorted: `name/` for directories, `name (N bytes)` for files, `name@` for symlinks |
//! | `read_file` | `{"path": string}` | the file's text (UTF-8 only) |
//! | `write_file` | `{"path": string, "content": string}` | `wrote N bytes to PATH`; parent directories are created |
//! | `search` | `{"query": string, "path"?: string}` | `path:line: text` for every line containing `query` (case-insensitive), in UTF-8 files under `path`, depth- and count-bounded |

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Names of the built-in tools, in a stable order.
pub const NAMES: [&str; 4] = ["list_dir", "read_file", "write_file", "search"];

/// Names of the built-in tools, in a stable order.
pub fn names() -> &'static [&'static str] {
    &NAMES
}

/// Whether `name` is one of the built-in tools.
pub fn is_tool(name: &str) -> bool {
    NAMES.contains(&name)
}

/// A one-sentence description of a tool, for model providers.
pub fn description(name: &str) -> Option<&'static str> {
    Some(match name {
        "list_dir" => {
            "List the entries of a directory in the workspace (directories end with '/', symlinks with '@')."
        }
        "read_file" => "Read a UTF-8 text file from the workspace.",
        "write_file" => {
            "Write a text file in the workspace, replacing it if it exists and creating parent directories."
        }
        "search" => {
            "Search UTF-8 files under a workspace directory for lines containing a text (case-insensitive); prints path:line: text."
        }
        _ => return None,
    })
}

/// The JSON Schema of a tool's arguments (an object schema), for model providers.
pub fn schema(name: &str) -> Option<Value> {
    let path = |what: &str| json!({"type": "string", "description": what});
    Some(match name {
        "list_dir" => json!({
            "type": "object",
            "properties": {"path": path("Directory relative to the workspace root; default \".\".")},
            "additionalProperties": false
        }),
        "read_file" => json!({
            "type": "object",
            "properties": {"path": path("File path relative to the workspace root.")},
            "required": ["path"],
            "additionalProperties": false
        }),
        "write_file" => json!({
            "type": "object",
            "properties": {
                "path": path("File path relative to the workspace root."),
                "content": {"type": "string", "description": "The complete new content of the file."}
            },
            "required": ["path", "content"],
            "additionalProperties": false
        }),
        "search" => json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Text to look for, case-insensitive."},
                "path": path("Directory (or file) to search, relative to the workspace root; default \".\".")
            },
            "required": ["query"],
            "additionalProperties": false
        }),
        _ => return None,
    })
}

/// The result of a tool call, as the core's `ToolDone` completion carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub output: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn ok(output: impl Into<String>) -> Self {
        ToolOutput {
            output: output.into(),
            is_error: false,
        }
    }

    pub fn error(output: impl Into<String>) -> Self {
        ToolOutput {
            output: output.into(),
            is_error: true,
        }
    }
}

/// Limits of the workspace tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolConfig {
    /// Longest output of any tool call; longer outputs are cut with a marker. Default
    /// 16 KiB.
    pub max_output_bytes: usize,
    /// Most bytes `read_file` reads from a file (it never reads more than the output
    /// cap either). Default 1 MiB.
    pub max_read_bytes: u64,
    /// Largest `content` `write_file` accepts. Default 1 MiB.
    pub max_write_bytes: usize,
    /// Most entries `list_dir` prints. Default 1,000.
    pub max_list_entries: usize,
    /// Most files `search` reads. Default 1,000.
    pub search_max_files: usize,
    /// Deepest directory level below its start that `search` enters. Default 8.
    pub search_max_depth: usize,
    /// Most matching lines `search` prints. Default 200.
    pub search_max_matches: usize,
    /// Most bytes `search` reads from each file. Default 1 MiB.
    pub search_max_file_bytes: u64,
}

impl Default for ToolConfig {
    fn default() -> Self {
        ToolConfig {
            max_output_bytes: 16 * 1024,
            max_read_bytes: 1024 * 1024,
            max_write_bytes: 1024 * 1024,
            max_list_entries: 1_000,
            search_max_files: 1_000,
            search_max_depth: 8,
            search_max_matches: 200,
            search_max_file_bytes: 1024 * 1024,
        }
    }
}

/// Longest line text `search` prints per match.
const SEARCH_LINE_BYTES: usize = 200;
/// Longest query `search` accepts.
const MAX_QUERY_BYTES: usize = 1_000;

type ToolResult = Result<String, String>;

/// Set when the call a tool runs for is cancelled, aborted or timed out. The built-in
/// tools check it between directory entries and files and stop early, so a cancelled
/// call gives its thread back at once; a custom tool runner should do the same.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token nobody has cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What a tool answers once it noticed [`Cancel`].
const CANCELLED: &str = "cancelled";

/// One worker's workspace: a directory capability and the tool limits.
#[derive(Debug)]
pub struct Workspace {
    dir: Dir,
    config: ToolConfig,
}

impl Workspace {
    /// Opens an existing directory as a workspace, with default limits.
    pub fn open(root: &Path) -> io::Result<Workspace> {
        Workspace::open_with(root, ToolConfig::default())
    }

    /// Opens an existing directory as a workspace.
    pub fn open_with(root: &Path, config: ToolConfig) -> io::Result<Workspace> {
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
        Ok(Workspace { dir, config })
    }

    /// A workspace on an already opened directory capability.
    pub fn from_dir(dir: Dir, config: ToolConfig) -> Workspace {
        Workspace { dir, config }
    }

    pub fn config(&self) -> &ToolConfig {
        &self.config
    }

    /// Runs tool `name` with `arguments_json` (a JSON object; empty text counts as
    /// `{}`). Never panics; every problem is an error output.
    pub fn run(&self, name: &str, arguments_json: &str) -> ToolOutput {
        self.run_cancellable(name, arguments_json, &Cancel::new())
    }

    /// [`run`](Self::run) that stops early, with an error output, once `cancel` is set.
    pub fn run_cancellable(&self, name: &str, arguments_json: &str, cancel: &Cancel) -> ToolOutput {
        let result = match name {
            "list_dir" => parse::<ListDirArgs>(name, arguments_json)
                .and_then(|a| self.list_dir(a.path.as_deref().unwrap_or("."), cancel)),
            "read_file" => {
                parse::<ReadFileArgs>(name, arguments_json).and_then(|a| self.read_file(&a.path))
            }
            "write_file" => parse::<WriteFileArgs>(name, arguments_json)
                .and_then(|a| self.write_file(&a.path, &a.content)),
            "search" => parse::<SearchArgs>(name, arguments_json)
                .and_then(|a| self.search(&a.query, a.path.as_deref().unwrap_or("."), cancel)),
            _ => Err(format!(
                "unknown tool `{}`; the workspace tools are {}",
                cut(name, 100),
                NAMES.join(", ")
            )),
        };
        match result {
            Ok(output) => ToolOutput::ok(cap_output(output, self.config.max_output_bytes)),
            Err(error) => ToolOutput::error(cap_output(error, self.config.max_output_bytes)),
        }
    }

    fn list_dir(&self, path: &str, cancel: &Cancel) -> ToolResult {
        let path = check_path(path, true)?;
        let dir = self
            .dir
            .open_dir(path)
            .map_err(|e| describe(&e, "list", path))?;
        let mut entries = Vec::new();
        for entry in dir.entries().map_err(|e| describe(&e, "list", path))? {
            if cancel.is_cancelled() {
                return Err(CANCELLED.to_string());
            }
            let entry = entry.map_err(|e| describe(&e, "list", path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let line = match entry.file_type() {
                Ok(t) if t.is_symlink() => format!("{name}@"),
                Ok(t) if t.is_dir() => format!("{name}/"),
                Ok(t) if t.is_file() => match entry.metadata() {
                    Ok(m) => format!("{name} ({} bytes)", m.len()),
                    Err(_) => name,
                },
                Ok(_) => format!("{name} (special file)"),
                Err(_) => name,
            };
            entries.push(line);
        }
        if entries.is_empty() {
            return Ok("(empty directory)".to_string());
        }
        entries.sort();
        let total = entries.len();
        entries.truncate(self.config.max_list_entries);
        let mut out = entries.join("\n");
        if total > entries.len() {
            out.push_str(&format!(
                "\n[... {} more entries not shown]",
                total - entries.len()
            ));
        }
        Ok(out)
    }

    fn read_file(&self, path: &str) -> ToolResult {
        let path = check_path(path, false)?;
        let meta = self
            .dir
            .metadata(path)
            .map_err(|e| describe(&e, "read", path))?;
        if meta.is_dir() {
            return Err(format!("`{path}` is a directory (use list_dir)"));
        }
        if !meta.is_file() {
            return Err(format!("`{path}` is not a regular file"));
        }
        let file = self
            .dir
            .open_with(path, OpenOptions::new().read(true).custom_flags(NONBLOCK))
            .map_err(|e| describe(&e, "read", path))?;
        let size = file
            .metadata()
            .map_err(|e| describe(&e, "read", path))?
            .len();
        let limit = self
            .config
            .max_read_bytes
            .min(self.config.max_output_bytes as u64);
        let mut bytes = Vec::new();
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| describe(&e, "read", path))?;
        let truncated = size > bytes.len() as u64;
        let text = utf8_prefix(bytes, truncated)
            .ok_or_else(|| format!("`{path}` is not a UTF-8 text file ({size} bytes)"))?;
        if !truncated {
            return Ok(text);
        }
        let widest = usize::try_from(size).unwrap_or(usize::MAX);
        Ok(fit_with_marker(
            text,
            self.config.max_output_bytes,
            widest,
            |shown| format!("\n[... truncated: showing the first {shown} of {size} bytes]"),
        ))
    }

    fn write_file(&self, path: &str, content: &str) -> ToolResult {
        let path = check_path(path, false)?;
        if content.len() > self.config.max_write_bytes {
            return Err(format!(
                "content is {} bytes; write_file accepts at most {} bytes",
                content.len(),
                self.config.max_write_bytes
            ));
        }
        if let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            self.dir.create_dir_all(parent).map_err(|e| {
                if e.kind() != io::ErrorKind::AlreadyExists {
                    return describe(&e, "create the directory for", path);
                }
                // Something is in the way: a file, or a symlink cap-std will not follow.
                match self.dir.metadata(parent) {
                    Err(e) => describe(&e, "create the directory for", path),
                    Ok(_) => format!(
                        "cannot write `{path}`: `{}` is not a directory",
                        parent.display()
                    ),
                }
            })?;
        }
        let existed = match self.dir.metadata(path) {
            Ok(m) if m.is_dir() => return Err(format!("`{path}` is a directory")),
            Ok(m) if !m.is_file() => return Err(format!("`{path}` is not a regular file")),
            Ok(_) => true,
            Err(_) => false,
        };
        let mut file = self
            .dir
            .open_with(
                path,
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .custom_flags(NONBLOCK),
            )
            .map_err(|e| describe(&e, "write", path))?;
        file.write_all(content.as_bytes())
            .map_err(|e| describe(&e, "write", path))?;
        Ok(format!(
            "{} `{path}`: wrote {} bytes",
            if existed { "replaced" } else { "created" },
            content.len()
        ))
    }

    fn search(&self, query: &str, path: &str, cancel: &Cancel) -> ToolResult {
        if query.trim().is_empty() {
            return Err("`query` must not be empty".to_string());
        }
        if query.len() > MAX_QUERY_BYTES {
            return Err(format!(
                "`query` is {} bytes; at most {MAX_QUERY_BYTES} are allowed",
                query.len()
            ));
        }
        let path = check_path(path, true)?;
        let meta = self
            .dir
            .metadata(path)
            .map_err(|e| describe(&e, "search", path))?;
        let mut search = Search {
            config: &self.config,
            cancel,
            needle: query.to_lowercase(),
            matches: Vec::new(),
            files: 0,
            stopped: None,
        };
        if meta.is_file() {
            search.file(&self.dir, Path::new(path), &display_path(path));
        } else {
            let dir = self
                .dir
                .open_dir(path)
                .map_err(|e| describe(&e, "search", path))?;
            let prefix = if path == "." || path == "./" {
                String::new()
            } else {
                format!("{}/", path.trim_end_matches('/'))
            };
            search.dir(&dir, &prefix, 0);
        }
        let mut out = if search.matches.is_empty() {
            format!(
                "no matches for `{query}` in {} file{}",
                search.files,
                if search.files == 1 { "" } else { "s" }
            )
        } else {
            search.matches.join("\n")
        };
        if cancel.is_cancelled() {
            return Err(CANCELLED.to_string());
        }
        if let Some(why) = search.stopped {
            out.push_str(&format!("\n[... search stopped: {why}]"));
        }
        Ok(out)
    }
}

struct Search<'a> {
    config: &'a ToolConfig,
    cancel: &'a Cancel,
    needle: String,
    matches: Vec<String>,
    files: usize,
    stopped: Option<String>,
}

impl Search<'_> {
    fn dir(&mut self, dir: &Dir, prefix: &str, depth: usize) {
        let Ok(entries) = dir.entries() else { return };
        let mut names: Vec<(String, bool)> = Vec::new();
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            // Symlinks are never followed: no cycles, no detours.
            if kind.is_symlink() || !(kind.is_dir() || kind.is_file()) {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            names.push((name, kind.is_dir()));
        }
        names.sort();
        for (name, is_dir) in names {
            if self.stopped.is_some() || self.cancel.is_cancelled() {
                return;
            }
            let shown = format!("{prefix}{name}");
            if is_dir {
                if depth < self.config.search_max_depth
                    && let Ok(sub) = dir.open_dir(&name)
                {
                    self.dir(&sub, &format!("{shown}/"), depth + 1);
                }
            } else {
                self.file(dir, Path::new(&name), &shown);
            }
        }
    }

    fn file(&mut self, dir: &Dir, path: &Path, shown: &str) {
        if self.files >= self.config.search_max_files {
            self.stopped = Some(format!("read {} files", self.files));
            return;
        }
        self.files += 1;
        let Ok(file) = dir.open_with(path, OpenOptions::new().read(true).custom_flags(NONBLOCK))
        else {
            return;
        };
        let mut bytes = Vec::new();
        if file
            .take(self.config.search_max_file_bytes)
            .read_to_end(&mut bytes)
            .is_err()
        {
            return;
        }
        if bytes.contains(&0) {
            return;
        }
        let Some(text) = utf8_prefix(bytes, true) else {
            return;
        };
        for (i, line) in text.lines().enumerate() {
            if line.to_lowercase().contains(&self.needle) {
                if self.matches.len() >= self.config.search_max_matches {
                    self.stopped =
                        Some(format!("showing the first {} matches", self.matches.len()));
                    return;
                }
                self.matches.push(format!(
                    "{shown}:{}: {}",
                    i + 1,
                    cut(line.trim(), SEARCH_LINE_BYTES)
                ));
            }
        }
    }
}

/// Maps worker ids to workspaces `<root>/<worker_id>`, created on first use.
///
/// Workspaces are opened per call, not cached, so thousands of workers do not hold
/// thousands of descriptors.
#[derive(Debug)]
pub struct Workspaces {
    root: PathBuf,
    dir: Dir,
    config: ToolConfig,
}

impl Workspaces {
    /// Creates `root` if needed and opens it, with default tool limits.
    pub fn new(root: &Path) -> io::Result<Workspaces> {
        Workspaces::with_config(root, ToolConfig::default())
    }

    /// Creates `root` if needed and opens it.
    pub fn with_config(root: &Path, config: ToolConfig) -> io::Result<Workspaces> {
        std::fs::create_dir_all(root)?;
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
        Ok(Workspaces {
            root: root.to_path_buf(),
            dir,
            config,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &ToolConfig {
        &self.config
    }

    /// Where a worker's workspace lives on disk (it may not exist yet), or `None` for
    /// an id that is not a safe path segment.
    pub fn path_of(&self, worker_id: &str) -> Option<PathBuf> {
        is_valid_worker_id(worker_id).then(|| self.root.join(worker_id))
    }

    /// The workspace of `worker_id`, creating its directory on first use.
    pub fn workspace(&self, worker_id: &str) -> io::Result<Workspace> {
        if !is_valid_worker_id(worker_id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a valid worker id", cut(worker_id, 100)),
            ));
        }
        match self.dir.create_dir(worker_id) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let dir = self.dir.open_dir(worker_id)?;
        Ok(Workspace::from_dir(dir, self.config.clone()))
    }

    /// Removes `worker_id`'s workspace and everything in it (nothing to do when it was
    /// never created).
    pub fn remove(&self, worker_id: &str) -> io::Result<()> {
        if !is_valid_worker_id(worker_id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a valid worker id", cut(worker_id, 100)),
            ));
        }
        match self.dir.remove_dir_all(worker_id) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Runs a tool in `worker_id`'s workspace. Never panics.
    pub fn run(&self, worker_id: &str, name: &str, arguments_json: &str) -> ToolOutput {
        self.run_cancellable(worker_id, name, arguments_json, &Cancel::new())
    }

    /// [`run`](Self::run) that stops early, with an error output, once `cancel` is set.
    pub fn run_cancellable(
        &self,
        worker_id: &str,
        name: &str,
        arguments_json: &str,
        cancel: &Cancel,
    ) -> ToolOutput {
        match self.workspace(worker_id) {
            Ok(ws) => ws.run_cancellable(name, arguments_json, cancel),
            Err(e) => ToolOutput::error(cap_output(
                format!(
                    "the workspace of worker `{}` is unavailable: {e}",
                    cut(worker_id, 100)
                ),
                self.config.max_output_bytes,
            )),
        }
    }
}

/// Whether `id` can name a workspace directory: 1 to 128 ASCII letters, digits, `-`,
/// `_` or `.`, not starting with `.`.
pub fn is_valid_worker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListDirArgs {
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadFileArgs {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteFileArgs {
    path: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    query: String,
    #[serde(default)]
    path: Option<String>,
}

fn parse<T: DeserializeOwned>(tool: &str, arguments: &str) -> Result<T, String> {
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    let value: Value = serde_json::from_str(arguments)
        .map_err(|e| format!("invalid arguments for {tool}: not valid JSON ({e})"))?;
    if !value.is_object() {
        return Err(format!(
            "invalid arguments for {tool}: expected a JSON object, got {}",
            json_kind(&value)
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("invalid arguments for {tool}: {e}"))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a path argument before cap-std sees it, for clearer messages. cap-std is
/// what enforces the sandbox; this only refuses early what it would refuse anyway.
fn check_path(path: &str, empty_is_root: bool) -> Result<&str, String> {
    if path.is_empty() {
        return if empty_is_root {
            Ok(".")
        } else {
            Err("`path` must not be empty".to_string())
        };
    }
    if path.contains('\0') {
        return Err("`path` must not contain NUL characters".to_string());
    }
    if path.starts_with('/') {
        return Err(format!(
            "`{}` is an absolute path; paths are relative to the workspace root",
            cut(path, 200)
        ));
    }
    // `..` that climbs above the start, judged by the text alone. cap-std refuses
    // these too (and is what catches symlinks); refusing them here gives the same
    // answer whether or not the intermediate directories exist, and keeps write_file
    // from creating them before failing.
    let mut depth: usize = 0;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!(
                        "`{}` leads outside the workspace (`..` above its root)",
                        cut(path, 200)
                    )
                })?
            }
            _ => depth += 1,
        }
    }
    Ok(path)
}

/// Turns an I/O error into a message for the model.
fn describe(e: &io::Error, action: &str, path: &str) -> String {
    let path = cut(path, 200);
    if is_escape(e) {
        return format!("cannot {action} `{path}`: the path leads outside the workspace");
    }
    match e.kind() {
        io::ErrorKind::NotFound => format!("cannot {action} `{path}`: no such file or directory"),
        io::ErrorKind::NotADirectory => {
            format!("cannot {action} `{path}`: a component of the path is not a directory")
        }
        io::ErrorKind::PermissionDenied => format!("cannot {action} `{path}`: permission denied"),
        _ if e.raw_os_error() == Some(ELOOP) => {
            format!("cannot {action} `{path}`: too many levels of symbolic links")
        }
        _ => format!("cannot {action} `{path}`: {e}"),
    }
}

/// cap-std's refusal of a path that resolves outside its directory.
fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_none()
        || e.to_string().contains("outside of the filesystem")
}

const NONBLOCK: i32 = libc::O_NONBLOCK;
const ELOOP: i32 = libc::ELOOP;

/// `bytes` as text; when `truncated`, an incomplete character at the end is dropped.
fn utf8_prefix(bytes: Vec<u8>, truncated: bool) -> Option<String> {
    match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            let err = e.utf8_error();
            if truncated && err.error_len().is_none() {
                let valid = err.valid_up_to();
                let mut bytes = e.into_bytes();
                bytes.truncate(valid);
                String::from_utf8(bytes).ok()
            } else {
                None
            }
        }
    }
}

/// `s` cut so that it and a truncation marker fit in `max` bytes (only the marker is
/// returned when `max` is smaller than the marker).
fn cap_output(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let total = s.len();
    fit_with_marker(s, max, total, |shown| {
        format!("\n[... output truncated: showing {shown} of {total} bytes]")
    })
}

/// Cuts `text` at a char boundary so that it followed by `marker(shown)` fits in
/// `max` bytes; `marker(widest)` must be the longest marker `marker` can produce.
fn fit_with_marker(
    mut text: String,
    max: usize,
    widest: usize,
    marker: impl Fn(usize) -> String,
) -> String {
    let reserve = marker(widest).len();
    let mut end = max.saturating_sub(reserve).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&marker(end));
    text
}

/// At most `max` bytes of `s` at a char boundary, with "..." when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

fn display_path(path: &str) -> String {
    path.strip_prefix("./").unwrap_or(path).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_output_cuts_at_char_boundary() {
        assert_eq!(cap_output("abc".into(), 3), "abc");
        let marker = "\n[... output truncated: showing 0 of 6 bytes]";
        // Too small for anything but the marker.
        assert_eq!(cap_output("héllo".into(), 2), marker);
        // Room for "h" and half an "é": the "é" is left out whole.
        let text = format!("hé{}", "x".repeat(99));
        let widest = "\n[... output truncated: showing 102 of 102 bytes]";
        assert_eq!(
            cap_output(text, widest.len() + 2),
            "h\n[... output truncated: showing 1 of 102 bytes]"
        );
        let long = "x".repeat(1000);
        let capped = cap_output(long, 100);
        assert!(capped.len() <= 100 && capped.len() > 90, "{capped}");
        let shown = capped.find('\n').unwrap();
        assert!(
            capped.ends_with(&format!("showing {shown} of 1000 bytes]")),
            "{capped}"
        );
    }

    #[test]
    fn cap_std_refuses_escapes_by_itself() {
        // The sandbox is cap-std's, not check_path's: straight to the Dir, every
        // escape is refused with the error `is_escape` recognises.
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ws");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(tmp.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        std::os::unix::fs::symlink("..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("sub/up2")).unwrap();
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority()).unwrap();
        for path in [
            "..",
            "../secret",
            "sub/../../secret",
            "/etc/passwd",
            "etc/passwd",
            "up/secret",
            "sub/up2",
        ] {
            let e = dir.open(path).unwrap_err();
            assert!(is_escape(&e), "{path}: {e:?}");
            let e = dir.create_dir_all(format!("{path}/x")).unwrap_err();
            assert!(is_escape(&e), "{path}: {e:?}");
        }
        assert!(!is_escape(&dir.open("missing").unwrap_err()));
    }

    #[test]
    fn lexical_check_only_refuses_climbs_above_the_root() {
        for ok in [
            "a",
            "a/..",
            "a/../b",
            "./a/./b/../..",
            "a//b",
            "a/b/../../c",
        ] {
            assert!(check_path(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "..",
            "../",
            "a/../..",
            "a/../../x",
            "./..",
            "a/b/../../../c",
        ] {
            let e = check_path(bad, false).unwrap_err();
            assert!(e.contains("outside the workspace"), "{bad}: {e}");
        }
    }

    #[test]
    fn worker_ids() {
        for ok in ["w_1", "W-2.x", "a"] {
            assert!(is_valid_worker_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a\\b",
            "é",
            "a b",
            &"x".repeat(129),
        ] {
            assert!(!is_valid_worker_id(bad), "{bad}");
        }
    }

    #[test]
    fn every_tool_has_a_schema_and_description() {
        for name in names() {
            assert_eq!(schema(name).unwrap()["type"], "object");
            assert!(description(name).is_some());
        }
        assert!(schema("rm").is_none());
    }
}
