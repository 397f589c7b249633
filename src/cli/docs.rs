//! `completions` and `man`: generated from the command line's own definition.

use super::output::print_bytes;
use super::{Cli, CompletionsArgs, Failure, ManArgs};
use clap::CommandFactory;
use skill_tuner::exit::ExitClass;

pub fn completions(args: CompletionsArgs) -> Result<ExitClass, Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "skill-tuner", &mut script);
    print_bytes(&script)
}

/// The main page on standard output, or every page written into `--out-dir`.
pub fn man(args: ManArgs) -> Result<ExitClass, Failure> {
    let written = match &args.out_dir {
        Some(dir) => clap_mangen::generate_to(Cli::command(), dir).map(|()| Vec::new()),
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map(|()| page)
        }
    };
    let page = written.map_err(|e| {
        Failure::new(
            ExitClass::Failed,
            format!("cannot write the manual pages: {e}"),
        )
    })?;
    print_bytes(&page)
}
