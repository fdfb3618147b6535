//! A bare Tauri 2 window showing one static page: the baseline of bench/app. With `--zh` it
//! shows a page of Chinese text in the app's font stack instead, to tell the cost of the CJK
//! fonts apart from the cost of the app.
use tauri::Manager;

fn main() {
    let zh = std::env::args().any(|a| a == "--zh");
    tauri::Builder::default()
        .setup(move |app| {
            if zh {
                if let Some(w) = app.get_webview_window("main") {
                    let url = w.url()?.join("zh.html")?;
                    w.navigate(url)?;
                }
            }
            Ok(())
        })
        .run(tauri::generate_context!())
        .expect("error while running the hello-world");
}
