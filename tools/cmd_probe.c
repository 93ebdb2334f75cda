/* fvlm probe: the supervised linear probe on frozen anatomy features; its
 * options and output are fvlm eval's (cmd_eval.c) plus --train-split and --C. */
#include "cmd_eval.h"
#include "commands.h"

int cmd_probe(int argc, char **argv) { return eval_command_main(argc, argv, 1); }
