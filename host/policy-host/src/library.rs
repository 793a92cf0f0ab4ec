//! Loading one plugin library: the ABI version first, then the function table, then the
//! plugin's description. Libraries are never unloaded (see the crate docs).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use yoi_policy::abi::{
    ABI_VERSION, AbiVersionFn, CommandFn, DescribeFn, FreeFn, InitFn, ObserveFn, PolicyTable,
    ReleaseFn, TABLE_SYMBOL, TableFn, VERSION_SYMBOL,
};
use yoi_policy::wire::Description;

use crate::call::{self, CallError};
use crate::staging::Staging;

/// Why a plugin file was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read or stage the file: {0}")]
    Read(#[source] io::Error),
    #[error("not a loadable library: {0}")]
    Open(String),
    #[error("not a yoi policy plugin: it does not export `{0}`")]
    MissingSymbol(&'static str),
    #[error(
        "built for policy ABI version {found}, but this host speaks version {expected}: \
         rebuild the plugin against yoi-policy with ABI version {expected}"
    )]
    AbiVersion { found: u32, expected: u32 },
    #[error("its function table is missing (a null or misaligned pointer)")]
    NoTable,
    #[error("its function table is {found} bytes, ABI v1 needs at least {need}")]
    TableTooSmall { found: usize, need: usize },
    #[error("its function table has no `{0}` function")]
    MissingFunction(&'static str),
    #[error("describing itself failed: {0}")]
    Describe(CallError),
    #[error("it reports the name {0:?}; a name is 1 to 64 of a-z 0-9 - _")]
    BadName(String),
    #[error("it reports the version {0:?}; a version is 1 to 64 printable characters")]
    BadVersion(String),
}

/// The entry points of a plugin, all present.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entries {
    pub(crate) free: FreeFn,
    describe: DescribeFn,
    pub(crate) init: InitFn,
    pub(crate) observe: ObserveFn,
    pub(crate) command: CommandFn,
    pub(crate) release: ReleaseFn,
}

/// A loaded plugin library, ready to make policy instances.
#[derive(Debug)]
pub struct Plugin {
    description: Description,
    file: String,
    pub(crate) entries: Entries,
}

impl Plugin {
    /// The name it reports, which configurations refer to it by.
    pub fn name(&self) -> &str {
        &self.description.name
    }

    pub fn version(&self) -> &str {
        &self.description.version
    }

    /// The `yoi-policy` version it was built with.
    pub fn sdk_version(&self) -> &str {
        &self.description.sdk_version
    }

    /// The name of the file it was loaded from.
    pub fn file(&self) -> &str {
        &self.file
    }
}

/// Loads plugin files through private copies in a staging directory.
#[derive(Debug)]
pub struct PluginLoader {
    staging: Staging,
}

impl PluginLoader {
    /// A loader whose private copies of plugin files go to `staging_dir` (created when
    /// missing; copies an earlier process left there are removed). It must be on a file
    /// system that allows mapping executable code (not `noexec`); the host uses
    /// `<data-dir>/cache/plugins`.
    pub fn new(staging_dir: impl Into<PathBuf>) -> io::Result<PluginLoader> {
        Ok(PluginLoader {
            staging: Staging::new(staging_dir.into())?,
        })
    }

    /// Loads the plugin in `file`: checks its ABI version before touching anything else,
    /// then its function table, then asks for its name and version.
    ///
    /// Blocking (file I/O and the dynamic loader): call it off async worker threads.
    pub fn load(&self, file: &Path) -> Result<Arc<Plugin>, LoadError> {
        let file_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string());
        let staged = self.staging.stage(file).map_err(LoadError::Read)?;
        // The loader's messages name the private copy; the operator knows the file.
        let library = open(&staged).map_err(|e| {
            // libloading's message is the operation; the loader's own is its source.
            let message = match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            };
            LoadError::Open(message.replace(&*staged.to_string_lossy(), &file_name))
        })?;
        // Never unloaded, refused or not: its initialisers have run, and unloading Rust
        // code with thread-locals is unsound. A refused build is loaded once however
        // often it is retried (see `staging`).
        let library: &'static libloading::Library = Box::leak(Box::new(library));
        // SAFETY: the symbols' types are the ABI's; the library stays loaded for good.
        let version = unsafe { symbol::<AbiVersionFn>(library, VERSION_SYMBOL) }?;
        // SAFETY: the ABI's version function takes nothing and only answers a number.
        let found = unsafe { version() };
        if found != ABI_VERSION {
            return Err(LoadError::AbiVersion {
                found,
                expected: ABI_VERSION,
            });
        }
        // SAFETY: as above.
        let table_fn = unsafe { symbol::<TableFn>(library, TABLE_SYMBOL) }?;
        // SAFETY: a v1 plugin's table function answers a pointer to a `'static` table.
        let table = unsafe { read_table(table_fn()) }?;
        let entries = Entries::of(&table)?;
        Ok(Arc::new(Plugin {
            description: describe(&entries)?,
            file: file_name,
            entries,
        }))
    }
}

/// Opens `path` resolving every symbol now, so a missing one is a refusal at load time
/// rather than an abort at the first call.
fn open(path: &Path) -> Result<libloading::Library, libloading::Error> {
    // SAFETY: loading runs the library's initialisers: plugins are code the operator
    // installed and the host trusts to that extent (a plugin runs in-process).
    #[cfg(unix)]
    unsafe {
        use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
        Library::open(Some(path), RTLD_NOW | RTLD_LOCAL).map(Into::into)
    }
    // SAFETY: as above.
    #[cfg(not(unix))]
    unsafe {
        libloading::Library::new(path)
    }
}

/// # Safety
///
/// `T` is the type of the symbol `name` in `library`.
unsafe fn symbol<T: Copy>(
    library: &'static libloading::Library,
    name: &'static str,
) -> Result<T, LoadError> {
    // SAFETY: the caller's contract.
    unsafe { library.get::<T>(name.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|_| LoadError::MissingSymbol(name))
}

/// # Safety
///
/// `table` is null, misaligned, or points at a readable table of its `size` bytes.
unsafe fn read_table(table: *const PolicyTable) -> Result<PolicyTable, LoadError> {
    if table.is_null() || !table.is_aligned() {
        return Err(LoadError::NoTable);
    }
    // The size first: only a table at least as large as v1's may be read whole.
    // SAFETY: the caller's contract; `size` is the first field of every version.
    let size = unsafe { std::ptr::addr_of!((*table).size).read() };
    if size < PolicyTable::SIZE {
        return Err(LoadError::TableTooSmall {
            found: size,
            need: PolicyTable::SIZE,
        });
    }
    // SAFETY: as above, and the table is at least v1's size.
    Ok(unsafe { table.read() })
}

impl Entries {
    fn of(t: &PolicyTable) -> Result<Entries, LoadError> {
        Ok(Entries {
            free: t.free.ok_or(LoadError::MissingFunction("free"))?,
            describe: t.describe.ok_or(LoadError::MissingFunction("describe"))?,
            init: t.init.ok_or(LoadError::MissingFunction("init"))?,
            observe: t.observe.ok_or(LoadError::MissingFunction("observe"))?,
            command: t.command.ok_or(LoadError::MissingFunction("command"))?,
            release: t.release.ok_or(LoadError::MissingFunction("release"))?,
        })
    }
}

/// Asks the plugin for its name and versions, and checks them.
fn describe(entries: &Entries) -> Result<Description, LoadError> {
    // SAFETY: `describe` and `free` are the plugin's, called per the ABI.
    let description: Description =
        unsafe { call::call(entries.free, |out| (entries.describe)(out), call::json) }
            .map_err(LoadError::Describe)?;
    let name_ok = (1..=64).contains(&description.name.len())
        && description
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(LoadError::BadName(description.name));
    }
    let printable = |s: &str| (1..=64).contains(&s.len()) && !s.chars().any(char::is_control);
    if !printable(&description.version) {
        return Err(LoadError::BadVersion(description.version));
    }
    if !printable(&description.sdk_version) {
        return Err(LoadError::BadVersion(description.sdk_version));
    }
    Ok(description)
}
