#!/usr/bin/env node
// The Nodemailer peer of visitmail's benchmark.
//
// Measures: wall time from handing the first message to Nodemailer's pooled SMTP
// transport until the sink has accepted the last one (every sendMail promise resolved),
// for N pre-built messages read from a JSON file (the same bytes every peer sends).
// Reading the file and creating the transport happen before the clock starts; opening
// the pool's connections happens inside the measured window, as for every peer.
//
// --nodelay 1 (the default) opens the pool's sockets with TCP_NODELAY through Nodemailer's
// public `getSocket` hook, as Python's asyncio does for every TCP socket: without it,
// Nagle's algorithm holds each message's final ".\r\n" until the server's delayed ACK
// (about 40 ms on Linux), which caps a connection at ~25 messages/s on loopback and would
// make every other peer look far faster than Nodemailer really is. --nodelay 0 measures
// Nodemailer exactly as shipped.
//
// Usage: node send.js --host H --port P --connections K --messages FILE [--nodelay 1|0]
// Prints one JSON line: {"sent": <accepted messages>, "failed": <n>, "seconds": <float>,
//                        "nodemailer": "<version>", "error": "<first error or null>"}
'use strict';

const fs = require('fs');
const net = require('net');
const nodemailer = require('nodemailer');
const nodemailerVersion = require('nodemailer/package.json').version;

function parseArgs(argv) {
    const args = {};
    for (let i = 0; i < argv.length; i += 2) {
        const key = argv[i];
        if (!key.startsWith('--') || i + 1 >= argv.length) {
            throw new Error(`bad argument: ${key}`);
        }
        args[key.slice(2)] = argv[i + 1];
    }
    for (const required of ['host', 'port', 'connections', 'messages']) {
        if (!(required in args)) {
            throw new Error(`missing --${required}`);
        }
    }
    return args;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    // [{sender, recipient, message_id, raw_b64}], written by bench/workload.py.
    const workload = JSON.parse(fs.readFileSync(args.messages, 'utf8'));
    const messages = workload.map((m) => ({
        envelope: { from: m.sender, to: [m.recipient] },
        raw: Buffer.from(m.raw_b64, 'base64'),
    }));

    const options = {
        host: args.host,
        port: Number(args.port),
        secure: false,
        ignoreTLS: true, // the sink speaks plain SMTP on loopback, to every peer
        pool: true,
        maxConnections: Number(args.connections),
        maxMessages: Infinity,
    };
    if ((args.nodelay ?? '1') !== '0') {
        options.getSocket = (socketOptions, callback) => {
            const socket = net.connect({ host: args.host, port: Number(args.port), noDelay: true });
            const onError = (err) => callback(err);
            socket.once('error', onError);
            socket.once('connect', () => {
                socket.removeListener('error', onError); // Nodemailer handles errors from here on
                callback(null, { connection: socket });
            });
        };
    }
    const transport = nodemailer.createTransport(options);

    let sent = 0;
    let failed = 0;
    let firstError = null;
    const started = process.hrtime.bigint();
    await Promise.all(
        messages.map((message) =>
            transport.sendMail(message).then(
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
            )
        )
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
