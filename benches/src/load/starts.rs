//! Starts: Z1 (`start_typed` from concurrent callers) and Z1t (the same as the client login,
//! tenancy off and on); the logins of Z1t and Z2t are made here.

use super::*;

/// Runs the phases of this module that the plan asks for.
pub(super) async fn run(run: &mut Run<'_>) -> Result<()> {
    let bars = run.bars;
    let plan = run.plan;
    let count = plan.count;
    let clients = plan.clients;
    let config = run.config;
    let logins = run.logins;
    let watcher = &mut run.watcher;
    let r = &mut run.r;
    if plan.has("z1") {
        let task = "z1-start";
        let bar = Bar::new(bars, count.into(), "Z1", "start_typed");
        watcher.quiesce().await?;
        let (starts, took, delta) = starts(config, watcher, task, count, clients, &bar).await?;
        r.top.insert("z1", watcher.top_statements(TOP).await?);
        let rate = starts as f64 / took.as_secs_f64();
        say(
            &bar,
            format!(
                "Z1  start_typed, {clients} callers: {}",
                format_value(rate, "starts/s")
            ),
        );
        r.z1 = Some(r.record("z1", rate));
        r.counts
            .push(PhaseCounts::new("z1", "start", starts, 0, delta));
        // Leave no scheduled executions behind: later claims would have to skip them.
        // (VACUUM cannot share a multi-statement batch.)
        for sql in [
            format!("delete from public.zart_tasks where task_name = '{task}'"),
            format!("delete from public.zart_executions where task_name = '{task}'"),
            "vacuum analyze public.zart_tasks, public.zart_executions".to_owned(),
        ] {
            watcher
                .client()
                .batch_execute(&sql)
                .await
                .context("Z1: removing the started executions")?;
        }
    }
    if (plan.has("z1t") || plan.has("z2t")) && run.round == 0 {
        let names = logins.create(watcher.client()).await?;
        println!(
            "Z1t/Z2t: logins {} (zart_client) and {} (zart_worker), tenant {TENANT}",
            names.client, names.worker
        );
        r.logins = Some(names);
    }
    if plan.has("z1t") && run.round == 0 {
        let login = logins.client();
        let client_config = logins.config(config, &login);
        let mut rates = [0.0; 2];
        for (on, key, task) in [(false, "z1t.off", "z1t-off"), (true, "z1t.on", "z1t-on")] {
            let mode = if on { "on" } else { "off" };
            tenancy::set_tenancy(watcher.client(), on).await?;
            let bar = Bar::new(
                bars,
                count.into(),
                "Z1t",
                &format!("start_typed as the client login, tenancy {mode}"),
            );
            watcher.quiesce().await?;
            let (starts, took, delta) =
                starts(&client_config, watcher, task, count, clients, &bar).await?;
            r.top.insert(key, watcher.top_statements(TOP).await?);
            let rate = starts as f64 / took.as_secs_f64();
            let versus = if on {
                format!("; on / off = {:.2}×", rate / rates[0])
            } else {
                String::new()
            };
            say(
                &bar,
                format!(
                    "Z1t start_typed, {clients} callers, as {login}, tenancy {mode}: {}{versus}",
                    format_value(rate, "starts/s")
                ),
            );
            rates[usize::from(on)] = rate;
            r.counts
                .push(PhaseCounts::new(key, "start", starts, 0, delta));
            tenancy::remove(watcher.client(), task, None).await?;
        }
        tenancy::set_tenancy(watcher.client(), false).await?;
        r.z1t = Some((rates[0], rates[1]));
    }
    Ok(())
}

/// Z1: `start_typed` calls from `clients` callers sharing one client; returns the starts,
/// the time they took and the database's work meanwhile.
pub(super) async fn starts(
    config: &Config,
    watcher: &mut Watcher,
    task: &str,
    count: u32,
    clients: u32,
    bar: &Bar,
) -> Result<(u64, Duration, zart_benches::dbstats::Delta)> {
    let per_client = count / clients;
    let done = Arc::new(AtomicU64::new(0));
    let (mark, took);
    // The client and its pool live in this block only, so their connections are closed
    // before the statistics window ends.
    let results = {
        let pool = PgPool::from_config(config.clone(), clients as usize)?;
        let scheduler = Arc::new(PostgresScheduler::new(pool));
        // Open the pool's connections before timing, as the raw baselines do.
        futures_util::future::try_join_all((0..clients).map(|_| scheduler.check_schema()))
            .await
            .context("Z1: opening the pool")?;
        let mut registry = TaskRegistry::new();
        registry.register(task, NoOp::new(Arc::new(Entries::new(u64::MAX)), None))?;
        let durable = DurableScheduler::new(scheduler, Arc::new(registry));
        mark = watcher.begin(false).await?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (durable, done, task) = (durable.clone(), done.clone(), task.to_owned());
            tasks.push(tokio::spawn(async move {
                for i in 0..per_client {
                    let outcome = durable
                        .start_typed(&format!("{task}-{c}-{i}"), &task, &0u32)
                        .await?;
                    if !outcome.created {
                        bail!("Z1: {task}-{c}-{i} already existed");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        let all = futures_util::future::try_join_all(tasks);
        tokio::pin!(all);
        let results = loop {
            tokio::select! {
                results = &mut all => break results,
                _ = tokio::time::sleep(Duration::from_millis(100)) => bar.set(done.load(Ordering::Relaxed)),
            }
        };
        took = started.elapsed();
        results
    };
    for r in results.context("Z1: a caller panicked")? {
        r?;
    }
    let delta = watcher.end(mark).await?;
    Ok((u64::from(per_client * clients), took, delta))
}
