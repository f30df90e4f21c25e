#!/usr/bin/env node
// The Nodemailer peer of the `latency` scenario: the floor of "a report is exported, its
// notification reaches the SMTP server" when the application sends directly, with no
// outbox. At a fixed rate (trigger i at start + i / rate), it hands one notification to
// Nodemailer's pooled SMTP transport (`maxConnections` = K, TCP_NODELAY), optionally with a
// PDF attachment read from a file, without waiting for earlier ones.
//
// The sink timestamps each arrival; this script prints, per trigger, the wall-clock time
// (ms since the epoch, sub-millisecond) at which it was handed to Nodemailer, so the
// latency is measured exactly as for visitmail: trigger to acceptance at the sink.
//
// Usage: node steady.js JOB.json
//   JOB: {"host", "port", "connections", "from", "to", "rate", "count", "tag",
//         "attachment": null | {"path", "filename"}}
//   Each message's subject is "<tag> <i>".
// Prints one JSON line: {"sent", "failed", "error", "triggers": [[i, ms_since_epoch], ...]}.
'use strict';

const fs = require('fs');
const net = require('net');
const { performance } = require('perf_hooks');
const nodemailer = require('nodemailer');

function wallMs() {
    return performance.timeOrigin + performance.now();
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

async function main() {
    const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
    const attachment = job.attachment
        ? [{ filename: job.attachment.filename, content: fs.readFileSync(job.attachment.path),
             contentType: 'application/pdf' }]
        : [];
    const transport = nodemailer.createTransport({
        host: job.host,
        port: Number(job.port),
        secure: false,
        ignoreTLS: true,
        pool: true,
        maxConnections: Number(job.connections),
        maxMessages: Infinity,
        getSocket: (socketOptions, callback) => {
            const socket = net.connect({ host: job.host, port: Number(job.port), noDelay: true });
            const onError = (err) => callback(err);
            socket.once('error', onError);
            socket.once('connect', () => {
                socket.removeListener('error', onError);
                callback(null, { connection: socket });
            });
        },
    });

    let sent = 0;
    let failed = 0;
    let firstError = null;
    const triggers = [];
    const pending = [];
    const start = wallMs();
    for (let i = 0; i < job.count; i++) {
        await sleep(start + (i * 1000) / job.rate - wallMs());
        triggers.push([i, wallMs()]);
        pending.push(
            transport
                .sendMail({
                    from: job.from,
                    to: job.to,
                    subject: `${job.tag} ${i}`,
                    text: `New lead ${i}: Company ${i} Ltd, Alex${i} Miller${i}.\n`,
                    attachments: attachment,
                })
                .then(
                    () => {
                        sent += 1;
                    },
                    (err) => {
                        failed += 1;
                        if (firstError === null) {
                            firstError = String(err && err.message ? err.message : err);
                        }
                    }
                )
        );
    }
    await Promise.all(pending);
    transport.close();
    process.stdout.write(JSON.stringify({ sent, failed, error: firstError, triggers }) + '\n');
}

main().catch((err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
});
