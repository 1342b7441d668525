//! Shell completions and man pages for both binaries, from their clap
//! command definitions (so they never drift from `--help`).

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// The completion script for `shell` on `out` (built in memory first:
/// clap_complete panics on a write error such as a closed pipe).
pub fn write_completions(
    cmd: &mut clap::Command,
    shell: Shell,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    let mut buf = Vec::new();
    clap_complete::generate(shell, cmd, name, &mut buf);
    out.write_all(&buf)?;
    out.flush()
}

/// Man pages: the command's (`NAME.1`) and one per subcommand, at any
/// depth (`NAME-SUB.1`, `NAME-SUB-SUB.1`), written into `dir`. Returns the
/// files written.
pub fn write_man_pages(cmd: clap::Command, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    std::fs::create_dir_all(dir)?;
    let mut cmd = cmd;
    cmd.build();
    page(&cmd, cmd.get_name(), dir, &mut written)?;
    Ok(written)
}

fn page(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone().name(name.to_string())).render(&mut buf)?;
    std::fs::write(&path, buf)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        page(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// The main man page on `out`.
pub fn write_man_page(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}
