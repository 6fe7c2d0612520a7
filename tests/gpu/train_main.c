/*
 * train_main.c - `nader-train`: the `nader train` command alone, for the
 * engine-only build (make engine) on machines that lack the daemons'
 * libraries.  Runs exactly cli/cmd_train.c, so what the GPU check
 * measures is what `nader train --device cuda:N` does.
 *
 *   nader-train DESIGN --dataset D --data DIR [options of nader train]
 */
int cmd_train(int argc, char **argv);

int main(int argc, char **argv)
{
    char name[] = "train";

    argv[0] = name;
    return cmd_train(argc, argv);
}
