/* cmd_eval: fvlm eval and fvlm probe share one command line (cmd_eval.c). */
#ifndef FVLM_CMD_EVAL_H
#define FVLM_CMD_EVAL_H

/* probe = 0: fvlm eval; 1: fvlm probe. Returns the exit code. */
int eval_command_main(int argc, char **argv, int probe);

#endif
