/*
 * rd_cluster_scan.c - (being written: see rd_cluster_int.h)
 */
#include "config.h"

#include "rd_cluster_int.h"
