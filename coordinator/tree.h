/*
 * tree.h - the modification tree of a search.
 *
 * Every design of a search is a node: the base design is the root, and
 * each other design was made from its parent by applying one inspiration.
 * A node carries the design's identity (canonical hash) and text, the
 * inspiration that produced it, and what training said about it: the
 * screening accuracy every design gets, the full-protocol accuracy the
 * best get, and the accuracies of extra seeds for the final best.
 *
 * The tree is what the Proposer walks to choose the next parent, what
 * the Reflector compares children with, what `nader tree` prints, and,
 * rendered compactly, what the language model sees in the LLM-chosen
 * proposer mode.  It is rebuilt from the store after a restart, so it
 * holds nothing that is not in the design and result records.
 *
 * Ownership: tree_new returns a tree owned by the caller, freed with
 * tree_destroy(&t); nodes and their strings belong to the tree, and a
 * pointer from tree_get stays valid until the next tree_add.
 */
#ifndef NADER_TREE_H
#define NADER_TREE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "text.h"

typedef enum tree_state {
    TREE_PENDING, /* waiting for its screening result */
    TREE_DONE,    /* screened */
    TREE_FAILED   /* training failed or diverged */
} tree_state_t;

/* "pending", "done" or "failed". */
const char *tree_state_name(tree_state_t s);

#define TREE_MAX_SEEDS 8

typedef struct tree_node {
    int id;        /* 0 is the root; ids follow creation */
    int parent;    /* -1 for the root */
    int iteration; /* made in; 0 for the root */
    char name[48]; /* "d7" */
    char hash[33];
    char *design;           /* the design's canonical text */
    int64_t inspiration_id; /* -1 for none */
    char *inspiration;      /* NULL for the root */
    tree_state_t state;
    char *reason; /* why training failed, or NULL */

    double screen_acc; /* percent; NAN until known */
    double full_acc;   /* full protocol, NAN until known */
    int n_seeds;       /* extra seeds finished */
    double seed_acc[TREE_MAX_SEEDS];
    int64_t params;
    int width;

    bool expanded; /* was chosen as a parent */
    int n_children;
    int *children; /* ids, in creation order */
} tree_node_t;

typedef struct tree tree_t;

tree_t *tree_new(void);
void tree_destroy(tree_t **t);

/* Number of nodes. */
int tree_size(const tree_t *t);

/* Node id, or NULL when there is none. */
tree_node_t *tree_get(const tree_t *t, int id);

/*
 * Add a design.  parent is -1 for the root (only as the first node).
 * The name is "d<id>".  Copies the strings.  Returns the new id, or -1
 * when out of memory or the parent does not exist.
 */
int tree_add(tree_t *t, int parent, int iteration, const char *hash,
             const char *design, int64_t inspiration_id,
             const char *inspiration);

/* The node with this design hash, or -1. */
int tree_find(const tree_t *t, const char *hash);

/* Record results; acc in percent. */
void tree_set_screen(tree_t *t, int id, double acc, int64_t params, int width);
void tree_set_full(tree_t *t, int id, double acc);
void tree_add_seed(tree_t *t, int id, double acc);
void tree_set_failed(tree_t *t, int id, const char *reason);

/*
 * The accuracy a node is ranked by: the mean of its full-protocol and
 * extra-seed runs when it has them, else its screening accuracy; NAN
 * when it has none.
 */
double tree_node_score(const tree_node_t *n);

/* Whether child did better than its parent at screening. */
bool tree_node_improved(const tree_t *t, const tree_node_t *child);

/* The node with the best screening accuracy (ties: lowest id), or -1. */
int tree_best_screened(const tree_t *t);

/* The node with the best score (full protocol first), or -1. */
int tree_best(const tree_t *t);

/*
 * The default parent choice: walk depth first from the root, into
 * children that beat their parent, best child first, and take the first
 * node not yet expanded.  When every such node is expanded, take the
 * best-screened node not yet expanded; when all are, the best-screened
 * node.  Only screened nodes are chosen.  Returns -1 when none is.
 */
int tree_select_dfs(const tree_t *t);

/* The best-screened node, preferring ones not yet expanded. */
int tree_select_best(const tree_t *t);

/* Ids of screened nodes ranked by screening accuracy (best first).
 * Writes at most max ids; returns how many. */
int tree_ranked(const tree_t *t, int *ids, int max);

/*
 * Whether inspiration id was applied on the way from the root to node,
 * or to one of node's children already.
 */
bool tree_inspiration_used(const tree_t *t, int node, int64_t insp_id);

/*
 * Print the tree as an indented outline, one line per node:
 *   d0 91.20%  (root)
 *     d3 92.05%  +0.85  [12] Add a squeeze-and-excitation gate ...
 * with_text adds each design's text under its line.  Inspirations are
 * cut to width characters (0: whole).
 */
void tree_render(const tree_t *t, text_buf_t *b, bool with_text, int width);

/* The tree as JSON (an array of node objects, by id) for results
 * folders; malloc'd. */
char *tree_to_json(const tree_t *t);

#endif
