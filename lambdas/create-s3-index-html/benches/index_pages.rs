//! Renders the index pages of 1,000,000 synthetic keys, as a run over a large bucket would
//! (walk the sorted keys, render each finished directory, compare its ETag with the stored
//! page's), and prints the wall time and the process's peak resident memory.
//!
//! `cargo bench -p create-s3-index-html --bench index_pages`

use std::time::Instant;

use create_s3_index_html::listing::{Directory, DirectoryWalker, ListedObject};
use create_s3_index_html::page::{page_etag, render_index_page};

const TOP_DIRECTORIES: usize = 40;
const SUB_DIRECTORIES: usize = 25;
const FILES_PER_DIRECTORY: usize = 1000;

/// Peak resident set size in MiB, from /proc/self/status (VmHWM).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let started = Instant::now();
    let mut walker = DirectoryWalker::new();
    let mut finished: Vec<Directory> = Vec::new();
    let (mut keys, mut pages, mut html_bytes) = (0usize, 0usize, 0usize);
    let render = |finished: &mut Vec<Directory>, pages: &mut usize, html_bytes: &mut usize| {
        for directory in finished.drain(..) {
            let html = render_index_page(&directory);
            // What the function compares with the listed ETag of the stored page.
            assert_eq!(page_etag(&html).len(), 32);
            *pages += 1;
            *html_bytes += html.len();
        }
    };
    // Zero-padded names make generation order the listing order, as S3 returns it.
    for top in 0..TOP_DIRECTORIES {
        for sub in 0..SUB_DIRECTORIES {
            for file in 0..FILES_PER_DIRECTORY {
                let key = format!("dists/d{top:02}/s{sub:02}/hhvm-nightly_2026.11.{file:04}-1~noble_amd64 & <x>.deb");
                let object = ListedObject {
                    key,
                    size: (file as u64 + 1) * 4_321,
                    last_modified: 1_763_700_000 + file as i64,
                    e_tag: None,
                };
                walker.push(object, &mut finished).expect("keys are generated in order");
                keys += 1;
            }
            render(&mut finished, &mut pages, &mut html_bytes);
        }
    }
    walker.finish(&mut finished);
    render(&mut finished, &mut pages, &mut html_bytes);
    let elapsed = started.elapsed();

    println!("keys:          {keys}");
    println!("pages:         {pages}");
    println!("HTML written:  {:.1} MiB", html_bytes as f64 / 1_048_576.0);
    println!("wall time:     {:.3} s", elapsed.as_secs_f64());
    let peak = peak_rss_mib();
    match peak {
        Some(mib) => println!("peak RSS:      {mib:.1} MiB (VmHWM)"),
        None => println!("peak RSS:      unavailable (no /proc/self/status)"),
    }
    // For the benchmark command, which reads this line.
    println!(
        "RESULT {{\"keys\":{keys},\"pages\":{pages},\"htmlBytes\":{html_bytes},\"seconds\":{:.3},\"peakRssMib\":{}}}",
        elapsed.as_secs_f64(),
        peak.map_or("null".to_string(), |mib| format!("{mib:.1}"))
    );
}
