//! `timebank`: the headless command line over the core, for staff IT and scripting.
//! Every write goes through `timebank_core::service::execute`, like the desktop app.
mod cli;

use anyhow::Context as _;
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let lang = args.lang;
    let json = args.json;
    match rt.block_on(cli::run(args)).context("timebank") {
        Ok(code) => code,
        Err(e) => {
            // Core errors are shown in the user's language with their stable code.
            if let Some(ce) = e.downcast_ref::<timebank_core::CoreError>() {
                if json {
                    println!("{}", serde_json::json!({ "error": ce.to_wire(lang) }));
                } else {
                    eprintln!("{} [{}]", ce.message(lang), ce.code.as_str());
                    if let Some(rows) = ce.data.as_ref().and_then(|d| d.as_array()) {
                        for r in rows {
                            let reason = if lang == timebank_core::Lang::Zh {
                                &r["reason_zh"]
                            } else {
                                &r["reason_en"]
                            };
                            let label = if lang == timebank_core::Lang::Zh {
                                "第"
                            } else {
                                "line "
                            };
                            let suffix = if lang == timebank_core::Lang::Zh {
                                "行"
                            } else {
                                ""
                            };
                            eprintln!(
                                "  {label}{}{suffix} [{}]: {}",
                                r["line"],
                                r["field"].as_str().unwrap_or(""),
                                reason.as_str().unwrap_or("")
                            );
                        }
                    }
                }
                ExitCode::from(1)
            } else {
                eprintln!("{e:#}");
                ExitCode::from(1)
            }
        }
    }
}
