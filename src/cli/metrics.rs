use super::Context;
use super::format::print_json;
use queuectl::error::Result;
use queuectl::store::OpenMode;

pub fn run(ctx: &Context) -> Result<()> {
    let metrics = ctx.store(OpenMode::ReadOnly)?.metrics()?;
    if ctx.json {
        return print_json(&metrics);
    }
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("jobs total:          {}", metrics.total);
    for (state, n) in &metrics.counts {
        println!("  {:<18} {n}", format!("{state}:"));
    }
    println!(
        "success rate:        {}",
        or_dash(metrics.success_rate.map(|r| format!("{:.1}%", r * 100.0)))
    );
    println!(
        "avg attempts:        {}",
        or_dash(metrics.avg_attempts.map(|a| format!("{a:.2}")))
    );
    println!(
        "avg duration:        {}",
        or_dash(metrics.avg_duration_ms.map(|d| format!("{d:.0} ms")))
    );
    println!(
        "p95 duration:        {}",
        or_dash(metrics.p95_duration_ms.map(|d| format!("{d} ms")))
    );
    println!("finished last min:   {}", metrics.finished_last_minute);
    println!("finished last hour:  {}", metrics.finished_last_hour);
    Ok(())
}
