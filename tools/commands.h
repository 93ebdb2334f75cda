/* commands.h: the prototypes of every subcommand (from commands.def). */
#ifndef FVLM_COMMANDS_H
#define FVLM_COMMANDS_H

#define CMD(name, summary) int cmd_##name(int argc, char **argv);
#include "commands.def"
#undef CMD

#endif
