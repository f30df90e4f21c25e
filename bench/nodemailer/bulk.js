#!/usr/bin/env node
// The Nodemailer peer of the `bulk` scenario: what a bulk follow-up costs without a durable
// outbox. Renders one template for N leads (plain placeholder substitution, values
// HTML-escaped in the HTML part) and sends every message through Nodemailer's pooled SMTP
// transport (`maxConnections` = K, sockets with TCP_NODELAY as in send.js), all at once.
//
// Measures: wall time from the first render to the last accepted message (rendering is
// inside the window, as it is for visitmail). Reading the job file and creating the
// transport come before.
//
// Usage: node bulk.js JOB.json
//   JOB: {"host", "port", "connections", "from", "template": {"subject", "text", "html"},
//         "headers": {name: value}, "leads": [{"to": address, "values": {name: value}}]}
// Prints one JSON line: {"sent", "failed", "seconds", "nodemailer", "error"}.
'use strict';

const fs = require('fs');
const net = require('net');
const nodemailer = require('nodemailer');
const nodemailerVersion = require('nodemailer/package.json').version;

const PLACEHOLDER = /\{\{\s*([\w.]+)\s*\}\}/g;
const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function render(template, values, escape) {
    return template.replace(PLACEHOLDER, (_, name) => {
        const value = values[name] === undefined ? '' : String(values[name]);
        return escape ? value.replace(/[&<>"']/g, (c) => ESCAPES[c]) : value;
    });
}

async function main() {
    const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
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
    const started = process.hrtime.bigint();
    await Promise.all(
        job.leads.map((lead) => {
            const message = {
                from: job.from,
                to: lead.to,
                subject: render(job.template.subject, lead.values, false),
                text: render(job.template.text, lead.values, false),
                headers: job.headers || {},
            };
            if (job.template.html) {
                message.html = render(job.template.html, lead.values, true);
            }
            return transport.sendMail(message).then(
                (info) => {
                    if (info.accepted && info.accepted.length === 1) {
                        sent += 1;
                    } else {
                        failed += 1;
                    }
                },
                (err) => {
                    failed += 1;
                    if (firstError === null) {
                        firstError = String(err && err.message ? err.message : err);
                    }
                }
            );
        })
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    transport.close();
    process.stdout.write(
        JSON.stringify({ sent, failed, seconds, nodemailer: nodemailerVersion, error: firstError }) +
            '\n'
    );
}

main().catch((err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
});
