/* frugal: deep learning that fits the memory and the time you have. One include for all. */
#ifndef FRUGAL_H
#define FRUGAL_H
#include "frugal/core.h"
#include "frugal/pool.h"
#include "frugal/ops.h"
#include "frugal/ops_tome.h"
#include "frugal/io.h"
#include "frugal/graph.h"
#include "frugal/zoo.h"
#include "frugal/train.h"
#include "frugal/vmem.h"
#include "frugal/lm.h"
#include "frugal/rl.h"
#include "frugal/vit.h"
#define FRUGAL_VERSION "0.1.0"
#endif
