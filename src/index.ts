import { entry } from './main.js'

void entry()
