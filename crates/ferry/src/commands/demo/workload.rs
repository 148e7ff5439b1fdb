//! The demo's sample schema and live workload on the source.
//!
//! The schema holds what makes replication hard: `customers.bio` is TOASTed (updates of
//! other columns leave it unchanged, so it is not sent), `order_events` has no key (REPLICA
//! IDENTITY FULL, duplicate rows), `orders.status` is an enum and `orders.id` an identity
//! column. The workload is a steady mix of inserts, updates, deletes, and now and then one
//! large transaction.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

/// Creates schema `shop` with `orders` orders and their customers and events.
pub async fn create_schema(client: &tokio_postgres::Client, orders: u32) -> anyhow::Result<()> {
    let customers = (orders / 10).max(10);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA shop;
             CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
             CREATE TABLE shop.customers (
                 id int PRIMARY KEY, email text NOT NULL, bio text, updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE shop.orders (
                 id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                 customer int NOT NULL, amount numeric(12,2) NOT NULL,
                 status shop.order_status NOT NULL DEFAULT 'new', placed_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE shop.order_events (order_id bigint, event text, at timestamptz DEFAULT now());
             ALTER TABLE shop.order_events REPLICA IDENTITY FULL;
             INSERT INTO shop.customers (id, email, bio)
               SELECT g, 'customer' || g || '@example.com',
                      CASE WHEN g % 10 = 0 THEN (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 400) i) END
               FROM generate_series(1, {customers}) g;
             INSERT INTO shop.orders (customer, amount, status)
               SELECT 1 + g % {customers}, (g % 997) * 1.25, (ARRAY['new','paid','shipped']::shop.order_status[])[1 + g % 3]
               FROM generate_series(1, {orders}) g;
             INSERT INTO shop.order_events (order_id, event)
               SELECT 1 + g % {orders}, 'created' FROM generate_series(1, {orders} / 2) g;"
        ))
        .await
        .context("creating the demo schema on the source")
}

/// Runs transactions until `stop`, counting them; returns how many ran.
pub async fn run(
    client: tokio_postgres::Client,
    orders: u32,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> anyhow::Result<u64> {
    let customers = (orders / 10).max(10);
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let customer = 1 + (n * 7919) % u64::from(customers);
        let order = 1 + (n * 104_729) % u64::from(orders);
        let sql = match n % 10 {
            0..=3 => format!(
                "INSERT INTO shop.orders (customer, amount) VALUES ({customer}, {}.{:02});
                 INSERT INTO shop.order_events (order_id, event) VALUES (currval('shop.orders_id_seq'), 'created')",
                n % 500,
                n % 100
            ),
            4..=6 => format!(
                "BEGIN;
                 UPDATE shop.orders SET status = 'paid' WHERE id = {order};
                 INSERT INTO shop.order_events (order_id, event) VALUES ({order}, 'paid');
                 COMMIT"
            ),
            // Leaves the TOASTed bio unchanged.
            7 => format!("UPDATE shop.customers SET updated_at = now() WHERE id = {customer}"),
            8 => format!(
                "BEGIN;
                 DELETE FROM shop.order_events WHERE ctid = (SELECT ctid FROM shop.order_events WHERE order_id = {order} LIMIT 1);
                 UPDATE shop.orders SET status = 'cancelled' WHERE id = {order};
                 COMMIT"
            ),
            _ if n % 1000 == 9 => {
                // One large transaction now and then.
                "UPDATE shop.orders SET amount = amount + 1 WHERE id % 4 = 0".to_owned()
            }
            _ => format!("DELETE FROM shop.orders WHERE id = {order} AND status = 'cancelled'"),
        };
        client
            .batch_execute(&sql)
            .await
            .context("running the demo workload")?;
        count.fetch_add(1, Ordering::Relaxed);
        // A lively but gentle rate: about 200 transactions per second.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(n)
}
